// Package ec2api is an EC2-compatible Query API endpoint for the few actions
// egressd's failover controller uses — DescribeRouteTables, ReplaceRoute and
// DescribeInstanceStatus — holding route tables and instances in memory, so
// that the lab can run the real AWS SDK against it. Each ReplaceRoute can be
// applied to the lab through a hook ([Options.OnReplaceRoute]).
//
// Requests use the EC2 Query protocol (a form-encoded POST body, or a GET
// query string, carrying Action=...&Version=2016-11-15&...); responses and
// errors are the XML documents real EC2 sends, so aws-sdk-go-v2's ec2 client
// reads them unchanged. Point the client at the server with
// ec2.Options.BaseEndpoint.
//
// The server is deliberately small: no pagination (everything is returned in
// one page), no filters beyond those documented on [Server.ServeHTTP], no
// signature verification, and no eventual consistency.
package ec2api

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is the XML namespace of every successful response.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Fixed identifiers reported for every route table, route and instance.
const (
	// OwnerID is the account that owns every route table and instance.
	OwnerID = "123456789012"
	// VpcID is the VPC of every route table.
	VpcID = "vpc-0e9a1ab0000000001"
	// AvailabilityZone is the availability zone of every instance.
	AvailabilityZone = "us-east-1a"
)

// Options configures a [Server]. The zero value accepts any caller and
// changes routes without telling anyone.
type Options struct {
	// AccessKeyID, when set, is the only access key accepted: a request must
	// carry a SigV4 Authorization header whose Credential scope starts with
	// it, or it gets HTTP 401 with EC2 error code AuthFailure. The signature
	// itself is not verified.
	AccessKeyID string

	// OnReplaceRoute, when set, is called for each valid ReplaceRoute before
	// the route changes, without the server's lock held. An error fails the
	// call with HTTP 500, code InternalError, and leaves the route unchanged.
	// ReplaceRoute calls are serialised, hook included, so the hook sees
	// changes in the order they are recorded.
	OnReplaceRoute func(ctx context.Context, c RouteChange) error

	// Now, when set, replaces time.Now (for RouteChange.Time).
	Now func() time.Time
}

// Route is one route of a route table.
type Route struct {
	// DestinationCIDR is an IPv4 or IPv6 CIDR, such as "0.0.0.0/0" or "::/0".
	DestinationCIDR string
	// NetworkInterfaceID is the target ENI ("" when none).
	NetworkInterfaceID string
	// InstanceID is reported as the route's instanceId. When "", it is
	// filled in from the instance that owns NetworkInterfaceID, if any.
	InstanceID string
	// State is "active" (the default when "") or "blackhole". It is reported
	// as given: stopping the target instance does not make it a blackhole.
	State string
}

// RouteChange is one successful (or, as seen by the hook, proposed)
// ReplaceRoute.
type RouteChange struct {
	RouteTableID    string
	DestinationCIDR string
	From, To        Route // the route before and after
	Time            time.Time
}

// Instance state codes, as EC2 reports them in instanceState/code.
var stateCodes = map[string]int{
	"pending":       0,
	"running":       16,
	"shutting-down": 32,
	"terminated":    48,
	"stopping":      64,
	"stopped":       80,
}

// Instance and system status values, with the detail ("reachability")
// status EC2 reports alongside each.
var statusDetails = map[string]string{
	"ok":                "passed",
	"impaired":          "failed",
	"initializing":      "initializing",
	"insufficient-data": "insufficient-data",
}

// Server is the in-memory EC2 endpoint. It is an [http.Handler]; create it
// with [New]. It is safe for concurrent use.
type Server struct {
	opts Options

	replaceMu sync.Mutex // serialises ReplaceRoute, hook included

	mu        sync.Mutex
	instances map[string]*instance
	enis      map[string]string // ENI ID -> instance ID
	tables    map[string]*routeTable
	changes   []RouteChange
	calls     map[string]int
	failures  map[string]failure
	requests  int
}

type instance struct {
	id, eni, state, status string
}

type routeTable struct {
	id     string
	tags   map[string]string
	routes []Route
}

type failure struct {
	code string
	n    int
}

// New returns an empty server.
func New(opts Options) *Server {
	return &Server{
		opts:      opts,
		instances: map[string]*instance{},
		enis:      map[string]string{},
		tables:    map[string]*routeTable{},
		calls:     map[string]int{},
		failures:  map[string]failure{},
	}
}

// AddInstance adds (or resets) an instance with the given primary network
// interface, in state running with status ok.
func (s *Server) AddInstance(instanceID, networkInterfaceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.instances[instanceID]; ok {
		delete(s.enis, old.eni)
	}
	s.instances[instanceID] = &instance{id: instanceID, eni: networkInterfaceID, state: "running", status: "ok"}
	s.enis[networkInterfaceID] = instanceID
}

// SetInstanceState sets an instance's state: "pending", "running",
// "stopping", "stopped", "shutting-down" or "terminated". It panics on an
// unknown instance or state.
func (s *Server) SetInstanceState(instanceID, state string) {
	if _, ok := stateCodes[state]; !ok {
		panic("ec2api: unknown instance state " + strconv.Quote(state))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustInstance(instanceID).state = state
}

// SetInstanceStatus sets both the instance status and the system status of
// an instance: "ok", "impaired", "initializing" or "insufficient-data". It
// is reported while the instance is running; otherwise EC2 reports
// "not-applicable". It panics on an unknown instance or status.
func (s *Server) SetInstanceStatus(instanceID, status string) {
	if _, ok := statusDetails[status]; !ok {
		panic("ec2api: unknown instance status " + strconv.Quote(status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustInstance(instanceID).status = status
}

func (s *Server) mustInstance(id string) *instance {
	in, ok := s.instances[id]
	if !ok {
		panic("ec2api: unknown instance " + strconv.Quote(id))
	}
	return in
}

// AddRouteTable adds (or replaces) a route table with the given tags and
// routes. It panics on a route whose DestinationCIDR is not a valid CIDR.
func (s *Server) AddRouteTable(id string, tags map[string]string, routes ...Route) {
	t := &routeTable{id: id, tags: map[string]string{}}
	for k, v := range tags {
		t.tags[k] = v
	}
	for _, r := range routes {
		cidr, ok := canonicalCIDR(r.DestinationCIDR)
		if !ok {
			panic("ec2api: bad destination CIDR " + strconv.Quote(r.DestinationCIDR))
		}
		r.DestinationCIDR = cidr
		t.routes = append(t.routes, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tables[id] = t
}

// Route returns a table's route to destinationCIDR as it is reported (State
// and InstanceID filled in), and whether it exists.
func (s *Server) Route(tableID, destinationCIDR string) (Route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.findRoute(tableID, destinationCIDR)
	if r == nil {
		return Route{}, false
	}
	return s.resolve(*r), true
}

// Changes returns the successful ReplaceRoute calls, oldest first.
func (s *Server) Changes() []RouteChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RouteChange(nil), s.changes...)
}

// Calls returns how many requests for action the server has seen, whatever
// their result.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// FailNext makes the next n (authenticated) requests for action fail with
// the EC2 error code code, before any validation. The HTTP status follows
// EC2: 503 for RequestLimitExceeded and Unavailable, 500 for InternalError,
// 401 for AuthFailure, 403 for UnauthorizedOperation, 400 otherwise. n <= 0
// cancels a pending failure.
func (s *Server) FailNext(action, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.failures, action)
		return
	}
	s.failures[action] = failure{code: code, n: n}
}

// findRoute returns a pointer into the table's routes, or nil. It needs s.mu.
func (s *Server) findRoute(tableID, destinationCIDR string) *Route {
	t, ok := s.tables[tableID]
	if !ok {
		return nil
	}
	cidr, ok := canonicalCIDR(destinationCIDR)
	if !ok {
		return nil
	}
	for i := range t.routes {
		if t.routes[i].DestinationCIDR == cidr {
			return &t.routes[i]
		}
	}
	return nil
}

// resolve fills in a route's defaults as reported. It needs s.mu.
func (s *Server) resolve(r Route) Route {
	if r.State == "" {
		r.State = "active"
	}
	if r.InstanceID == "" && r.NetworkInterfaceID != "" {
		r.InstanceID = s.enis[r.NetworkInterfaceID]
	}
	return r
}

func canonicalCIDR(c string) (string, bool) {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return "", false
	}
	return p.Masked().String(), true
}

// apiError is an EC2 error response.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, code, format, args...)
}

func statusFor(code string) int {
	switch code {
	case "RequestLimitExceeded", "Unavailable":
		return http.StatusServiceUnavailable
	case "InternalError":
		return http.StatusInternalServerError
	case "AuthFailure":
		return http.StatusUnauthorized
	case "UnauthorizedOperation":
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// ServeHTTP answers one EC2 Query API request. The actions are:
//
//   - DescribeRouteTables: RouteTableId.N, and Filter.N.Name /
//     Filter.N.Value.M with the names route-table-id, tag:KEY and tag-key
//     (filters AND together, a filter's values OR). Tables are sorted by ID.
//   - ReplaceRoute: RouteTableId; DestinationCidrBlock or
//     DestinationIpv6CidrBlock; NetworkInterfaceId or InstanceId. It never
//     creates a route.
//   - DescribeInstanceStatus: InstanceId.N, IncludeAllInstances (by default
//     only running instances). Instances are sorted by ID.
//
// DryRun=true answers DryRunOperation (HTTP 412) after authentication.
// Anything else is InvalidAction.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	requestID := fmt.Sprintf("1ab0ec2a-0000-4000-8000-%012d", s.requests)
	s.mu.Unlock()

	resp, err := s.serve(r)
	if err != nil {
		writeError(w, err, requestID)
		return
	}
	resp.setRequestID(requestID)
	body, merr := xml.Marshal(resp)
	if merr != nil {
		writeError(w, errorf(http.StatusInternalServerError, "InternalError", "%v", merr), requestID)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func (s *Server) serve(r *http.Request) (response, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, badRequest("InvalidAction", "method %s is not supported", r.Method)
	}
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("MalformedQueryString", "%v", err)
	}
	action := r.Form.Get("Action")

	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()

	if s.opts.AccessKeyID != "" && accessKey(r) != s.opts.AccessKeyID {
		return nil, errorf(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}

	s.mu.Lock()
	if f, ok := s.failures[action]; ok {
		if f.n--; f.n > 0 {
			s.failures[action] = f
		} else {
			delete(s.failures, action)
		}
		s.mu.Unlock()
		return nil, errorf(statusFor(f.code), f.code, "injected failure of %s", action)
	}
	s.mu.Unlock()

	var handle func(*http.Request) (response, *apiError)
	switch action {
	case "DescribeRouteTables":
		handle = s.describeRouteTables
	case "ReplaceRoute":
		handle = s.replaceRoute
	case "DescribeInstanceStatus":
		handle = s.describeInstanceStatus
	case "":
		return nil, badRequest("MissingAction", "The request must contain the parameter Action")
	default:
		return nil, badRequest("InvalidAction", "The action %s is not valid for this web service.", action)
	}
	if v := r.Form.Get("DryRun"); v != "" && v != "false" {
		return nil, errorf(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return handle(r)
}

// accessKey returns the access key of a SigV4-signed request: from the
// Authorization header's Credential, or a presigned URL's X-Amz-Credential.
func accessKey(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if h := r.Header.Get("Authorization"); h != "" {
		_, after, ok := strings.Cut(h, "Credential=")
		if !ok {
			return ""
		}
		cred = after
	}
	key, _, _ := strings.Cut(cred, "/")
	return key
}

func writeError(w http.ResponseWriter, e *apiError, requestID string) {
	type errorResponse struct {
		XMLName   xml.Name `xml:"Response"`
		Code      string   `xml:"Errors>Error>Code"`
		Message   string   `xml:"Errors>Error>Message"`
		RequestID string   `xml:"RequestID"`
	}
	body, _ := xml.Marshal(errorResponse{Code: e.code, Message: e.message, RequestID: requestID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// list returns the values of a flattened Query list: prefix.1, prefix.2, ...
// in index order.
func list(form map[string][]string, prefix string) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok || len(vs) == 0 {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil {
			items = append(items, item{i, vs[0]})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

type filter struct {
	name   string
	values []string
}

// filters returns the Filter.N.Name / Filter.N.Value.M parameters.
func filters(form map[string][]string) []filter {
	var idx []int
	for k := range form {
		rest, ok := strings.CutPrefix(k, "Filter.")
		if !ok {
			continue
		}
		n, field, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(n); err == nil && field == "Name" {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	out := make([]filter, len(idx))
	for j, i := range idx {
		p := "Filter." + strconv.Itoa(i)
		out[j] = filter{name: form[p+".Name"][0], values: list(form, p+".Value")}
	}
	return out
}

func (t *routeTable) matches(f filter) (bool, *apiError) {
	anyValue := func(pred func(v string) bool) bool {
		for _, v := range f.values {
			if pred(v) {
				return true
			}
		}
		return false
	}
	switch {
	case f.name == "route-table-id":
		return anyValue(func(v string) bool { return v == t.id }), nil
	case f.name == "tag-key":
		return anyValue(func(v string) bool { _, ok := t.tags[v]; return ok }), nil
	case strings.HasPrefix(f.name, "tag:"):
		tv, ok := t.tags[strings.TrimPrefix(f.name, "tag:")]
		return ok && anyValue(func(v string) bool { return v == tv }), nil
	}
	return false, badRequest("InvalidParameterValue", "The filter '%s' is invalid", f.name)
}

func (s *Server) describeRouteTables(r *http.Request) (response, *apiError) {
	ids := list(r.Form, "RouteTableId")
	fs := filters(r.Form)

	s.mu.Lock()
	defer s.mu.Unlock()
	var tables []*routeTable
	if len(ids) > 0 {
		for _, id := range ids {
			t, ok := s.tables[id]
			if !ok {
				return nil, badRequest("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
			}
			tables = append(tables, t)
		}
	} else {
		for _, t := range s.tables {
			tables = append(tables, t)
		}
	}
	sort.Slice(tables, func(a, b int) bool { return tables[a].id < tables[b].id })

	out := &describeRouteTablesResponse{}
	seen := map[string]bool{}
tables:
	for _, t := range tables {
		if seen[t.id] {
			continue
		}
		seen[t.id] = true
		for _, f := range fs {
			ok, err := t.matches(f)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue tables
			}
		}
		out.RouteTables.Items = append(out.RouteTables.Items, s.xmlRouteTable(t))
	}
	return out, nil
}

func (s *Server) xmlRouteTable(t *routeTable) xmlRouteTable {
	x := xmlRouteTable{RouteTableID: t.id, VpcID: VpcID, OwnerID: OwnerID}
	for _, r := range t.routes {
		r = s.resolve(r)
		xr := xmlRoute{
			InstanceID:         r.InstanceID,
			NetworkInterfaceID: r.NetworkInterfaceID,
			State:              r.State,
			Origin:             "CreateRoute",
		}
		if strings.Contains(r.DestinationCIDR, ":") {
			xr.DestinationIpv6CidrBlock = r.DestinationCIDR
		} else {
			xr.DestinationCidrBlock = r.DestinationCIDR
		}
		if r.InstanceID != "" {
			xr.InstanceOwnerID = OwnerID
		}
		x.Routes.Items = append(x.Routes.Items, xr)
	}
	keys := make([]string, 0, len(t.tags))
	for k := range t.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags.Items = append(x.Tags.Items, xmlTag{Key: k, Value: t.tags[k]})
	}
	return x
}

func (s *Server) replaceRoute(r *http.Request) (response, *apiError) {
	tableID := r.Form.Get("RouteTableId")
	if tableID == "" {
		return nil, badRequest("MissingParameter", "The request must contain the parameter routeTableId")
	}
	v4, v6 := r.Form.Get("DestinationCidrBlock"), r.Form.Get("DestinationIpv6CidrBlock")
	var dest string
	switch {
	case v4 != "" && v6 != "":
		return nil, badRequest("InvalidParameterCombination", "Only one of destinationCidrBlock and destinationIpv6CidrBlock may be specified")
	case v4 != "":
		p, err := netip.ParsePrefix(v4)
		if err != nil || !p.Addr().Is4() {
			return nil, badRequest("InvalidParameterValue", "Value (%s) for parameter destinationCidrBlock is invalid.", v4)
		}
		dest = p.Masked().String()
	case v6 != "":
		p, err := netip.ParsePrefix(v6)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return nil, badRequest("InvalidParameterValue", "Value (%s) for parameter destinationIpv6CidrBlock is invalid.", v6)
		}
		dest = p.Masked().String()
	default:
		return nil, badRequest("MissingParameter", "The request must contain the parameter destinationCidrBlock or destinationIpv6CidrBlock")
	}
	for _, p := range []string{"GatewayId", "NatGatewayId", "TransitGatewayId", "VpcPeeringConnectionId",
		"EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId", "VpcEndpointId",
		"CoreNetworkArn", "OdbNetworkArn", "LocalTarget", "DestinationPrefixListId"} {
		if r.Form.Get(p) != "" {
			return nil, badRequest("InvalidParameterCombination", "The lab supports only networkInterfaceId and instanceId targets, not %s", p)
		}
	}
	eniID, instanceID := r.Form.Get("NetworkInterfaceId"), r.Form.Get("InstanceId")
	switch {
	case eniID != "" && instanceID != "":
		return nil, badRequest("InvalidParameterCombination", "More than one target specified")
	case eniID == "" && instanceID == "":
		return nil, badRequest("MissingParameter", "The request must contain a route target: networkInterfaceId or instanceId")
	}

	// Serialise replacements so that the hook applies them in the order
	// they are recorded.
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()

	s.mu.Lock()
	if _, ok := s.tables[tableID]; !ok {
		s.mu.Unlock()
		return nil, badRequest("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", tableID)
	}
	cur := s.findRoute(tableID, dest)
	if cur == nil {
		s.mu.Unlock()
		return nil, badRequest("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, tableID)
	}
	if eniID != "" {
		if instanceID = s.enis[eniID]; instanceID == "" {
			s.mu.Unlock()
			return nil, badRequest("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		}
	} else {
		in, ok := s.instances[instanceID]
		if !ok {
			s.mu.Unlock()
			return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", instanceID)
		}
		eniID = in.eni
	}
	now := time.Now
	if s.opts.Now != nil {
		now = s.opts.Now
	}
	change := RouteChange{
		RouteTableID:    tableID,
		DestinationCIDR: dest,
		From:            s.resolve(*cur),
		To:              Route{DestinationCIDR: dest, NetworkInterfaceID: eniID, InstanceID: instanceID, State: "active"},
		Time:            now(),
	}
	s.mu.Unlock()

	if s.opts.OnReplaceRoute != nil {
		if err := s.opts.OnReplaceRoute(r.Context(), change); err != nil {
			return nil, errorf(http.StatusInternalServerError, "InternalError", "An internal error has occurred (OnReplaceRoute: %v)", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur = s.findRoute(tableID, dest) // AddRouteTable may have replaced the table meanwhile
	if cur == nil {
		return nil, badRequest("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, tableID)
	}
	*cur = change.To
	s.changes = append(s.changes, change)
	return &replaceRouteResponse{Return: true}, nil
}

func (s *Server) describeInstanceStatus(r *http.Request) (response, *apiError) {
	ids := list(r.Form, "InstanceId")
	includeAll := false
	if v := r.Form.Get("IncludeAllInstances"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("InvalidParameterValue", "Value (%s) for parameter includeAllInstances is invalid.", v)
		}
		includeAll = b
	}
	if fs := filters(r.Form); len(fs) > 0 {
		return nil, badRequest("InvalidParameterValue", "The filter '%s' is not supported by the lab", fs[0].name)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var instances []*instance
	if len(ids) > 0 {
		for _, id := range ids {
			in, ok := s.instances[id]
			if !ok {
				return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
			}
			instances = append(instances, in)
		}
	} else {
		for _, in := range s.instances {
			instances = append(instances, in)
		}
	}
	sort.Slice(instances, func(a, b int) bool { return instances[a].id < instances[b].id })

	out := &describeInstanceStatusResponse{}
	seen := map[string]bool{}
	for _, in := range instances {
		if seen[in.id] || (!includeAll && in.state != "running") {
			continue
		}
		seen[in.id] = true
		status, detail := "not-applicable", "not-applicable"
		if in.state == "running" {
			status, detail = in.status, statusDetails[in.status]
		}
		summary := xmlStatusSummary{Status: status, Details: []xmlStatusDetail{{Name: "reachability", Status: detail}}}
		out.InstanceStatuses.Items = append(out.InstanceStatuses.Items, xmlInstanceStatus{
			InstanceID:       in.id,
			AvailabilityZone: AvailabilityZone,
			InstanceState:    xmlInstanceState{Code: stateCodes[in.state], Name: in.state},
			InstanceStatus:   summary,
			SystemStatus:     summary,
		})
	}
	return out, nil
}
