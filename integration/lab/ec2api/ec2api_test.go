package ec2api

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture returns a server holding two running instances and three route
// tables, served on loopback, and an SDK client for it.
func fixture(t *testing.T, opts Options) (*Server, *ec2.Client, *httptest.Server) {
	t.Helper()
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = "AKIDLAB"
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testTime }
	}
	s := New(opts)
	s.AddInstance("i-a", "eni-a")
	s.AddInstance("i-b", "eni-b")
	s.AddRouteTable("rtb-1", map[string]string{"egressd:ha": "prod", "Name": "private-a"},
		Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-a"},
		Route{DestinationCIDR: "::/0", NetworkInterfaceID: "eni-a"})
	s.AddRouteTable("rtb-2", map[string]string{"egressd:ha": "prod"},
		Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-a"})
	s.AddRouteTable("rtb-3", map[string]string{"egressd:ha": "staging"},
		Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-gone", InstanceID: "i-gone", State: "blackhole"})
	srv := httptest.NewServer(s) // loopback only
	t.Cleanup(srv.Close)
	return s, client(srv, "AKIDLAB"), srv
}

func client(srv *httptest.Server, accessKey string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(accessKey, "secret", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       srv.Client(),
	})
}

// errorCode returns the EC2 error code of an SDK error ("" for nil).
func errorCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error is not a smithy.APIError: %v", err)
	}
	return apiErr.ErrorCode()
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func tableIDs(out *ec2.DescribeRouteTablesOutput) []string {
	var ids []string
	for _, rt := range out.RouteTables {
		ids = append(ids, aws.ToString(rt.RouteTableId))
	}
	return ids
}

func newFilter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeRouteTables(t *testing.T) {
	_, c, _ := fixture(t, Options{})
	tests := []struct {
		name     string
		in       ec2.DescribeRouteTablesInput
		want     []string
		wantCode string
	}{
		{"all", ec2.DescribeRouteTablesInput{}, []string{"rtb-1", "rtb-2", "rtb-3"}, ""},
		{"by id, sorted", ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-2", "rtb-1"}}, []string{"rtb-1", "rtb-2"}, ""},
		{"by tag", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("tag:egressd:ha", "prod")}}, []string{"rtb-1", "rtb-2"}, ""},
		{"tag values OR", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("tag:egressd:ha", "staging", "prod")}}, []string{"rtb-1", "rtb-2", "rtb-3"}, ""},
		{"filters AND", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("tag:egressd:ha", "prod"), newFilter("route-table-id", "rtb-2", "rtb-3")}}, []string{"rtb-2"}, ""},
		{"tag-key", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("tag-key", "Name")}}, []string{"rtb-1"}, ""},
		{"ids and filter", ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-3"}, Filters: []types.Filter{newFilter("tag:egressd:ha", "prod")}}, nil, ""},
		{"no match", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("tag:egressd:ha", "dev")}}, nil, ""},
		{"unknown id", ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-1", "rtb-404"}}, nil, "InvalidRouteTableID.NotFound"},
		{"unknown filter", ec2.DescribeRouteTablesInput{Filters: []types.Filter{newFilter("vpc-id", VpcID)}}, nil, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeRouteTables(context.Background(), &tt.in)
			if code := errorCode(t, err); code != tt.wantCode {
				t.Fatalf("error code %q, want %q (err %v)", code, tt.wantCode, err)
			}
			if err != nil {
				if httpStatus(err) != http.StatusBadRequest {
					t.Errorf("HTTP status %d, want 400", httpStatus(err))
				}
				return
			}
			if got := tableIDs(out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tables %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDescribeRouteTableContents(t *testing.T) {
	_, c, _ := fixture(t, Options{})
	out, err := c.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-1", "rtb-3"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.RouteTables) != 2 {
		t.Fatalf("got %d tables", len(out.RouteTables))
	}
	rt := out.RouteTables[0]
	if aws.ToString(rt.VpcId) != VpcID || aws.ToString(rt.OwnerId) != OwnerID {
		t.Errorf("vpc %q owner %q", aws.ToString(rt.VpcId), aws.ToString(rt.OwnerId))
	}
	tags := map[string]string{}
	for _, tag := range rt.Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if want := map[string]string{"egressd:ha": "prod", "Name": "private-a"}; !reflect.DeepEqual(tags, want) {
		t.Errorf("tags %v, want %v", tags, want)
	}
	if len(rt.Routes) != 2 {
		t.Fatalf("got %d routes", len(rt.Routes))
	}
	v4, v6 := rt.Routes[0], rt.Routes[1]
	for _, r := range []types.Route{v4, v6} {
		if aws.ToString(r.NetworkInterfaceId) != "eni-a" || aws.ToString(r.InstanceId) != "i-a" ||
			aws.ToString(r.InstanceOwnerId) != OwnerID || r.State != types.RouteStateActive || r.Origin != types.RouteOriginCreateRoute {
			t.Errorf("route %+v", r)
		}
	}
	if aws.ToString(v4.DestinationCidrBlock) != "0.0.0.0/0" || v4.DestinationIpv6CidrBlock != nil {
		t.Errorf("IPv4 route destination %v / %v", aws.ToString(v4.DestinationCidrBlock), aws.ToString(v4.DestinationIpv6CidrBlock))
	}
	if aws.ToString(v6.DestinationIpv6CidrBlock) != "::/0" || v6.DestinationCidrBlock != nil {
		t.Errorf("IPv6 route destination %v / %v", aws.ToString(v6.DestinationCidrBlock), aws.ToString(v6.DestinationIpv6CidrBlock))
	}
	bh := out.RouteTables[1].Routes[0]
	if bh.State != types.RouteStateBlackhole || aws.ToString(bh.InstanceId) != "i-gone" {
		t.Errorf("blackhole route %+v", bh)
	}
}

func TestReplaceRoute(t *testing.T) {
	tests := []struct {
		name     string
		in       ec2.ReplaceRouteInput
		wantCode string
		dest     string // route to check on success
		want     Route  // as reported afterwards
	}{
		{
			name: "IPv4 to ENI",
			in:   ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-b")},
			dest: "0.0.0.0/0",
			want: Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-b", InstanceID: "i-b", State: "active"},
		},
		{
			name: "IPv6 to instance",
			in:   ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationIpv6CidrBlock: aws.String("::/0"), InstanceId: aws.String("i-b")},
			dest: "::/0",
			want: Route{DestinationCIDR: "::/0", NetworkInterfaceID: "eni-b", InstanceID: "i-b", State: "active"},
		},
		{
			name: "blackhole becomes active",
			in:   ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-3"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-a")},
			dest: "0.0.0.0/0",
			want: Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-a", InstanceID: "i-a", State: "active"},
		},
		{
			name:     "unknown table",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-404"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-b")},
			wantCode: "InvalidRouteTableID.NotFound",
		},
		{
			name:     "no such route",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-2"), DestinationIpv6CidrBlock: aws.String("::/0"), NetworkInterfaceId: aws.String("eni-b")},
			wantCode: "InvalidRoute.NotFound",
		},
		{
			name:     "unknown ENI",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-404")},
			wantCode: "InvalidNetworkInterfaceID.NotFound",
		},
		{
			name:     "unknown instance",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), InstanceId: aws.String("i-404")},
			wantCode: "InvalidInstanceID.NotFound",
		},
		{
			name:     "no destination",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), NetworkInterfaceId: aws.String("eni-b")},
			wantCode: "MissingParameter",
		},
		{
			name:     "two destinations",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), DestinationIpv6CidrBlock: aws.String("::/0"), NetworkInterfaceId: aws.String("eni-b")},
			wantCode: "InvalidParameterCombination",
		},
		{
			name:     "two targets",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-b"), InstanceId: aws.String("i-b")},
			wantCode: "InvalidParameterCombination",
		},
		{
			name:     "other target kind",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NatGatewayId: aws.String("nat-1")},
			wantCode: "InvalidParameterCombination",
		},
		{
			name:     "IPv6 CIDR as IPv4 destination",
			in:       ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("::/0"), NetworkInterfaceId: aws.String("eni-b")},
			wantCode: "InvalidParameterValue",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c, _ := fixture(t, Options{})
			_, err := c.ReplaceRoute(context.Background(), &tt.in)
			if code := errorCode(t, err); code != tt.wantCode {
				t.Fatalf("error code %q, want %q (err %v)", code, tt.wantCode, err)
			}
			if got := s.Calls("ReplaceRoute"); got != 1 {
				t.Errorf("Calls = %d, want 1", got)
			}
			if err != nil {
				if got := s.Changes(); len(got) != 0 {
					t.Errorf("failed call recorded changes %+v", got)
				}
				return
			}
			tableID := aws.ToString(tt.in.RouteTableId)
			if got, _ := s.Route(tableID, tt.dest); got != tt.want {
				t.Errorf("Route = %+v, want %+v", got, tt.want)
			}
			// The SDK sees the same.
			out, err := c.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{tableID}})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, r := range out.RouteTables[0].Routes {
				d := aws.ToString(r.DestinationCidrBlock) + aws.ToString(r.DestinationIpv6CidrBlock)
				if d != tt.dest {
					continue
				}
				found = true
				if aws.ToString(r.NetworkInterfaceId) != tt.want.NetworkInterfaceID || aws.ToString(r.InstanceId) != tt.want.InstanceID || r.State != types.RouteStateActive {
					t.Errorf("described route %s: eni %q instance %q state %q", d, aws.ToString(r.NetworkInterfaceId), aws.ToString(r.InstanceId), r.State)
				}
			}
			if !found {
				t.Errorf("described table has no route to %s", tt.dest)
			}
			changes := s.Changes()
			if len(changes) != 1 {
				t.Fatalf("Changes = %+v, want one", changes)
			}
			ch := changes[0]
			if ch.RouteTableID != tableID || ch.DestinationCIDR != tt.dest || ch.To != tt.want || !ch.Time.Equal(testTime) {
				t.Errorf("change %+v", ch)
			}
			if ch.From.NetworkInterfaceID == tt.want.NetworkInterfaceID {
				t.Errorf("change From %+v is the new route", ch.From)
			}
		})
	}
}

func TestAuthFailure(t *testing.T) {
	s, _, srv := fixture(t, Options{})
	for _, key := range []string{"AKIDOTHER", "AKIDLABX"} {
		_, err := client(srv, key).DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{})
		if code := errorCode(t, err); code != "AuthFailure" {
			t.Errorf("key %s: error code %q, want AuthFailure", key, code)
		}
		if httpStatus(err) != http.StatusUnauthorized {
			t.Errorf("key %s: HTTP status %d, want 401", key, httpStatus(err))
		}
	}
	if got := s.Calls("DescribeRouteTables"); got != 2 {
		t.Errorf("Calls = %d, want 2", got)
	}
	// No access key configured: anyone is let in.
	open := httptest.NewServer(New(Options{}))
	defer open.Close()
	if _, err := client(open, "AKIDANY").DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{}); err != nil {
		t.Errorf("open server: %v", err)
	}
}

func TestOnReplaceRoute(t *testing.T) {
	var s *Server
	var seen []RouteChange
	fail := errors.New("lab unreachable")
	var hookErr error
	s, c, _ := fixture(t, Options{OnReplaceRoute: func(ctx context.Context, ch RouteChange) error {
		// The server's lock is not held: reading it from the hook must not
		// deadlock, and the route has not changed yet.
		if r, _ := s.Route(ch.RouteTableID, ch.DestinationCIDR); r != ch.From {
			t.Errorf("route in hook %+v, want the old %+v", r, ch.From)
		}
		seen = append(seen, ch)
		return hookErr
	}})
	in := &ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-b")}
	before, _ := s.Route("rtb-1", "0.0.0.0/0")

	hookErr = fail
	_, err := c.ReplaceRoute(context.Background(), in)
	if code := errorCode(t, err); code != "InternalError" || httpStatus(err) != http.StatusInternalServerError {
		t.Fatalf("error %v (code %q, status %d), want InternalError 500", err, code, httpStatus(err))
	}
	if r, _ := s.Route("rtb-1", "0.0.0.0/0"); r != before {
		t.Errorf("route changed to %+v despite the hook's error", r)
	}
	if len(s.Changes()) != 0 {
		t.Errorf("Changes = %+v", s.Changes())
	}

	hookErr = nil
	if _, err := c.ReplaceRoute(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := RouteChange{
		RouteTableID: "rtb-1", DestinationCIDR: "0.0.0.0/0", Time: testTime,
		From: Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-a", InstanceID: "i-a", State: "active"},
		To:   Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-b", InstanceID: "i-b", State: "active"},
	}
	if !reflect.DeepEqual(seen, []RouteChange{want, want}) {
		t.Errorf("hook saw %+v", seen)
	}
	if got := s.Changes(); !reflect.DeepEqual(got, []RouteChange{want}) {
		t.Errorf("Changes = %+v", got)
	}
}

func TestConcurrentReplaceRoute(t *testing.T) {
	var mu sync.Mutex
	var hooked []RouteChange
	s, c, _ := fixture(t, Options{OnReplaceRoute: func(ctx context.Context, ch RouteChange) error {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, ch)
		return nil
	}})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		eni := []string{"eni-a", "eni-b"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ReplaceRoute(context.Background(), &ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-2"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String(eni)})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	changes := s.Changes()
	if !reflect.DeepEqual(changes, hooked) {
		t.Errorf("hook order differs from Changes")
	}
	for i := 1; i < len(changes); i++ {
		if changes[i].From != changes[i-1].To {
			t.Errorf("change %d starts from %+v, not %+v", i, changes[i].From, changes[i-1].To)
		}
	}
	if last, _ := s.Route("rtb-2", "0.0.0.0/0"); len(changes) != 20 || last != changes[19].To {
		t.Errorf("%d changes, final route %+v", len(changes), last)
	}
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		code   string
		status int
	}{
		{"RequestLimitExceeded", http.StatusServiceUnavailable},
		{"InternalError", http.StatusInternalServerError},
		{"UnauthorizedOperation", http.StatusForbidden},
		{"InvalidParameterValue", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s, c, _ := fixture(t, Options{})
			s.FailNext("ReplaceRoute", tt.code, 2)
			in := &ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: aws.String("eni-b")}
			for i := 0; i < 2; i++ {
				_, err := c.ReplaceRoute(context.Background(), in)
				if code := errorCode(t, err); code != tt.code || httpStatus(err) != tt.status {
					t.Fatalf("call %d: %v (code %q, status %d)", i, err, code, httpStatus(err))
				}
			}
			// Other actions are unaffected.
			if _, err := c.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReplaceRoute(context.Background(), in); err != nil {
				t.Fatalf("third call: %v", err)
			}
			if got := s.Calls("ReplaceRoute"); got != 3 {
				t.Errorf("Calls(ReplaceRoute) = %d, want 3", got)
			}
			if got := s.Calls("DescribeRouteTables"); got != 1 {
				t.Errorf("Calls(DescribeRouteTables) = %d, want 1", got)
			}
			if got := len(s.Changes()); got != 1 {
				t.Errorf("%d changes, want 1", got)
			}
		})
	}
}

func TestDescribeInstanceStatus(t *testing.T) {
	s, c, _ := fixture(t, Options{})
	s.AddInstance("i-c", "eni-c")
	s.AddInstance("i-d", "eni-d")
	s.SetInstanceState("i-b", "stopped")
	s.SetInstanceState("i-d", "terminated")
	s.SetInstanceStatus("i-c", "impaired")

	type status struct{ id, state, instance, system string }
	tests := []struct {
		name     string
		in       ec2.DescribeInstanceStatusInput
		want     []status
		wantCode string
	}{
		{
			name: "running only",
			in:   ec2.DescribeInstanceStatusInput{},
			want: []status{{"i-a", "running", "ok", "ok"}, {"i-c", "running", "impaired", "impaired"}},
		},
		{
			name: "all instances",
			in:   ec2.DescribeInstanceStatusInput{IncludeAllInstances: aws.Bool(true)},
			want: []status{
				{"i-a", "running", "ok", "ok"},
				{"i-b", "stopped", "not-applicable", "not-applicable"},
				{"i-c", "running", "impaired", "impaired"},
				{"i-d", "terminated", "not-applicable", "not-applicable"},
			},
		},
		{
			name: "stopped instance by id, running only",
			in:   ec2.DescribeInstanceStatusInput{InstanceIds: []string{"i-b", "i-a"}, IncludeAllInstances: aws.Bool(false)},
			want: []status{{"i-a", "running", "ok", "ok"}},
		},
		{
			name: "stopped instance by id, all",
			in:   ec2.DescribeInstanceStatusInput{InstanceIds: []string{"i-b"}, IncludeAllInstances: aws.Bool(true)},
			want: []status{{"i-b", "stopped", "not-applicable", "not-applicable"}},
		},
		{
			name:     "unknown instance",
			in:       ec2.DescribeInstanceStatusInput{InstanceIds: []string{"i-a", "i-404"}},
			wantCode: "InvalidInstanceID.NotFound",
		},
	}
	codes := map[string]int32{"running": 16, "stopped": 80, "terminated": 48}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeInstanceStatus(context.Background(), &tt.in)
			if code := errorCode(t, err); code != tt.wantCode {
				t.Fatalf("error code %q, want %q (err %v)", code, tt.wantCode, err)
			}
			if err != nil {
				return
			}
			var got []status
			for _, st := range out.InstanceStatuses {
				got = append(got, status{aws.ToString(st.InstanceId), string(st.InstanceState.Name),
					string(st.InstanceStatus.Status), string(st.SystemStatus.Status)})
				if aws.ToInt32(st.InstanceState.Code) != codes[string(st.InstanceState.Name)] {
					t.Errorf("%s: state code %d", aws.ToString(st.InstanceId), aws.ToInt32(st.InstanceState.Code))
				}
				if aws.ToString(st.AvailabilityZone) != AvailabilityZone {
					t.Errorf("%s: availability zone %q", aws.ToString(st.InstanceId), aws.ToString(st.AvailabilityZone))
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRawRequests covers what the SDK does not send: GET, no Version, bad
// actions, and the error document's shape.
func TestRawRequests(t *testing.T) {
	_, _, srv := fixture(t, Options{AccessKeyID: "-"}) // fixture insists on a key; "-" never matches
	open := httptest.NewServer(New(Options{}))
	defer open.Close()
	tests := []struct {
		name, url  string
		status     int
		code, root string
	}{
		{"GET without Version", open.URL + "/?Action=DescribeRouteTables", 200, "", "DescribeRouteTablesResponse"},
		{"unknown action", open.URL + "/?Action=RunInstances&Version=2016-11-15", 400, "InvalidAction", "Response"},
		{"no action", open.URL + "/", 400, "MissingAction", "Response"},
		{"dry run", open.URL + "/?Action=ReplaceRoute&DryRun=true", 412, "DryRunOperation", "Response"},
		{"unsigned", srv.URL + "/?Action=DescribeRouteTables", 401, "AuthFailure", "Response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc struct {
				XMLName   xml.Name
				Code      string `xml:"Errors>Error>Code"`
				RequestID string `xml:"RequestID"`
				ReqID     string `xml:"requestId"`
			}
			if err := xml.NewDecoder(resp.Body).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || doc.Code != tt.code || doc.XMLName.Local != tt.root {
				t.Errorf("got %d %q <%s>, want %d %q <%s>", resp.StatusCode, doc.Code, doc.XMLName.Local, tt.status, tt.code, tt.root)
			}
			if tt.code == "" && (doc.XMLName.Space != Namespace || doc.ReqID == "") {
				t.Errorf("response namespace %q, requestId %q", doc.XMLName.Space, doc.ReqID)
			}
			if tt.code != "" && doc.RequestID == "" {
				t.Error("error response has no RequestID")
			}
		})
	}
}
