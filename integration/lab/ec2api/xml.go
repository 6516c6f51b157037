package ec2api

import "encoding/xml"

// The response documents, element for element as EC2 writes them (only the
// elements the lab knows about). Sets are wrapper structs so that an empty
// set is still written, as <routeTableSet/>, the way EC2 does.

// response is a successful response document.
type response interface {
	setRequestID(id string)
}

type responseMeta struct {
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
}

func (m *responseMeta) setRequestID(id string) {
	m.Xmlns = Namespace
	m.RequestID = id
}

type describeRouteTablesResponse struct {
	XMLName xml.Name `xml:"DescribeRouteTablesResponse"`
	responseMeta
	RouteTables struct {
		Items []xmlRouteTable `xml:"item"`
	} `xml:"routeTableSet"`
}

type xmlRouteTable struct {
	RouteTableID    string    `xml:"routeTableId"`
	VpcID           string    `xml:"vpcId"`
	OwnerID         string    `xml:"ownerId"`
	Routes          xmlRoutes `xml:"routeSet"`
	Associations    struct{}  `xml:"associationSet"`
	PropagatingVgws struct{}  `xml:"propagatingVgwSet"`
	Tags            xmlTags   `xml:"tagSet"`
}

type xmlRoutes struct {
	Items []xmlRoute `xml:"item"`
}

type xmlRoute struct {
	DestinationCidrBlock     string `xml:"destinationCidrBlock,omitempty"`
	DestinationIpv6CidrBlock string `xml:"destinationIpv6CidrBlock,omitempty"`
	InstanceID               string `xml:"instanceId,omitempty"`
	InstanceOwnerID          string `xml:"instanceOwnerId,omitempty"`
	NetworkInterfaceID       string `xml:"networkInterfaceId,omitempty"`
	State                    string `xml:"state"`
	Origin                   string `xml:"origin"`
}

type xmlTags struct {
	Items []xmlTag `xml:"item"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type replaceRouteResponse struct {
	XMLName xml.Name `xml:"ReplaceRouteResponse"`
	responseMeta
	Return bool `xml:"return"`
}

type describeInstanceStatusResponse struct {
	XMLName xml.Name `xml:"DescribeInstanceStatusResponse"`
	responseMeta
	InstanceStatuses struct {
		Items []xmlInstanceStatus `xml:"item"`
	} `xml:"instanceStatusSet"`
}

type xmlInstanceStatus struct {
	InstanceID       string           `xml:"instanceId"`
	AvailabilityZone string           `xml:"availabilityZone"`
	InstanceState    xmlInstanceState `xml:"instanceState"`
	SystemStatus     xmlStatusSummary `xml:"systemStatus"`
	InstanceStatus   xmlStatusSummary `xml:"instanceStatus"`
}

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlStatusSummary struct {
	Status  string            `xml:"status"`
	Details []xmlStatusDetail `xml:"details>item"`
}

type xmlStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}
