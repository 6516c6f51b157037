package failover

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// AWSOptions say how to reach EC2; empty fields are discovered.
type AWSOptions struct {
	Region   string // "" = AWS_REGION, else this instance's, from instance metadata
	Endpoint string // EC2 API base URL; "" = the region's default endpoint
	Self     Identity
}

// NewAWS returns an EC2 client with the default credential chain (on EC2:
// the instance role, through IMDSv2) and this instance's identity, with
// what opts leave empty read from instance metadata.
func NewAWS(ctx context.Context, opts AWSOptions) (*ec2.Client, Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryMaxAttempts(3),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(opts.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("ha: loading AWS configuration: %w", err)
	}
	self := opts.Self
	var md *imds.Client
	metadata := func(path string) (string, error) {
		if md == nil {
			md = imds.NewFromConfig(cfg)
		}
		out, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			return "", fmt.Errorf("ha: reading instance metadata %s: %w (outside EC2, set ha.instance_id, ha.network_interface and ha.region)", path, err)
		}
		defer out.Content.Close()
		b, err := io.ReadAll(io.LimitReader(out.Content, 4096))
		return strings.TrimSpace(string(b)), err
	}
	if cfg.Region == "" {
		if md == nil {
			md = imds.NewFromConfig(cfg)
		}
		r, err := md.GetRegion(ctx, &imds.GetRegionInput{})
		if err != nil {
			return nil, Identity{}, fmt.Errorf("ha: the region is unknown and instance metadata did not say it: %w (set ha.region)", err)
		}
		cfg.Region = r.Region
	}
	if self.InstanceID == "" {
		if self.InstanceID, err = metadata("instance-id"); err != nil {
			return nil, Identity{}, err
		}
	}
	if self.NetworkInterfaceID == "" {
		// The primary interface: the one whose MAC the instance reports.
		mac, err := metadata("mac")
		if err != nil {
			return nil, Identity{}, err
		}
		if self.NetworkInterfaceID, err = metadata("network/interfaces/macs/" + mac + "/interface-id"); err != nil {
			return nil, Identity{}, err
		}
	}
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return client, self, nil
}
