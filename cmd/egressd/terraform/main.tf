# An egressd high-availability pair in an existing VPC.
#
# Two instances, one per AZ, each in a public subnet. Each owns one private
# route table ("home"): the private subnets of its AZ use it, and its default
# route points at that instance's network interface. When an instance fails,
# its peer points the failed instance's table at itself (ec2:ReplaceRoute);
# when the failed one has been healthy again for ha.failback_after, it takes
# its table back. Terraform creates the routes once and then leaves them to
# egressd.
#
# The example creates the two private route tables itself, rather than taking
# existing ones, so that it owns exactly what egressd changes: the IAM policy
# can name these two tables (and require their egressd-ha tag), and no other
# route in the VPC is within egressd's reach.

data "aws_vpc" "this" {
  id = var.vpc_id
}

data "aws_subnet" "private" {
  for_each = toset(concat(var.private_subnet_ids_a, var.private_subnet_ids_b))
  id       = each.value
}

# Debian 12 from Debian's own account. most_recent picks the newest image at
# the first apply; the instances ignore later ones (lifecycle below), so a new
# image does not replace a running gateway.
data "aws_ami" "debian" {
  owners      = ["136693315894"]
  most_recent = true

  filter {
    name   = "name"
    values = ["debian-12-${local.debian_arch[var.architecture]}-*"]
  }
  filter {
    name   = "architecture"
    values = [var.architecture]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

locals {
  # The two members of the pair. Everything per instance is a for_each over
  # this map, so a and b cannot drift apart; peer names the other member.
  sides = {
    a = { peer = "b", public_subnet_id = var.public_subnet_id_a, private_subnet_ids = var.private_subnet_ids_a }
    b = { peer = "a", public_subnet_id = var.public_subnet_id_b, private_subnet_ids = var.private_subnet_ids_b }
  }

  # private subnet ID => the side whose route table it uses.
  private_subnet_sides = merge([
    for side, s in local.sides : { for id in s.private_subnet_ids : id => side }
  ]...)

  client_cidrs = length(var.client_cidrs) > 0 ? var.client_cidrs : sort([for s in data.aws_subnet.private : s.cidr_block])

  # The VPC resolver answers at the VPC's base address + 2.
  resolver = "${cidrhost(data.aws_vpc.this.cidr_block, 2)}:53"

  debian_arch = { arm64 = "arm64", x86_64 = "amd64" }
}

# ---------------------------------------------------------------------------
# Private route tables: what egressd changes.

resource "aws_route_table" "private" {
  for_each = local.sides
  vpc_id   = var.vpc_id

  # No inline route blocks: the default route is the aws_route below, so that
  # its target alone can be left to egressd.
  tags = {
    Name = "${var.name}-private-${each.key}"
    # The IAM policy lets egressd replace routes only in tables with this tag.
    "egressd-ha" = var.name
    # Which instance is at home here; egressd can also find its tables by
    # this tag ("tag:egressd-home=a" in ha.route_tables).
    "egressd-home" = each.key
  }
}

resource "aws_route_table_association" "private" {
  for_each       = local.private_subnet_sides
  subnet_id      = each.key
  route_table_id = aws_route_table.private[each.value].id
}

resource "aws_route" "default" {
  for_each               = local.sides
  route_table_id         = aws_route_table.private[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  network_interface_id   = aws_network_interface.egressd[each.key].id

  lifecycle {
    # egressd moves this route to the peer's interface at failover and back
    # at fail-back; a later apply must not undo a failover in progress.
    ignore_changes = [network_interface_id]
  }
}

# No ::/0 route: these tables give IPv6 no way out of the VPC. If the private
# subnets have IPv6, add ::/0 routes to the same interfaces (egressd moves
# both) and give the interfaces IPv6 addresses; otherwise IPv6 must not be
# routed around egressd some other way.

# ---------------------------------------------------------------------------
# Security group of both instances.

resource "aws_security_group" "egressd" {
  name        = var.name
  description = "egressd gateways: client traffic in, health checks between the pair"
  vpc_id      = var.vpc_id
  tags        = { Name = var.name }
}

# All protocols from the clients: the gateway is their default route, so
# everything they send to the internet arrives here. egressd answers TCP 80
# and 443 and rejects the rest (intercept.other), which fails fast instead of
# timing out.
resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each          = toset(local.client_cidrs)
  security_group_id = aws_security_group.egressd.id
  cidr_ipv4         = each.value
  ip_protocol       = "-1"
  description       = "clients routed through egressd"
}

# The peer's health checks of ha.listen. 9902 is the port in
# egressd.yaml.tftpl (ha.listen, ha.peer); the test checks they agree.
resource "aws_vpc_security_group_ingress_rule" "peer_health" {
  security_group_id            = aws_security_group.egressd.id
  referenced_security_group_id = aws_security_group.egressd.id
  ip_protocol                  = "tcp"
  from_port                    = 9902
  to_port                      = 9902
  description                  = "egressd ha health checks from the peer"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(var.ssh_cidrs)
  security_group_id = aws_security_group.egressd.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  description       = "ssh"
}

# Out: allowed connections to any address (egressd's policy decides, by
# name), the VPC resolver, the EC2 API and instance metadata.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.egressd.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "all"
}

# ---------------------------------------------------------------------------
# Network interfaces and public addresses.
#
# The interfaces are resources of their own, attached to the instances as
# device 0, so that their IDs and addresses exist before either instance:
# each instance's config names the peer's address and interface without a
# dependency cycle. They also outlive an instance replacement, keeping the
# routes' target and the Elastic IP.

resource "aws_network_interface" "egressd" {
  for_each        = local.sides
  subnet_id       = each.value.public_subnet_id
  security_groups = [aws_security_group.egressd.id]
  # The gateway forwards traffic that is not addressed to it.
  source_dest_check = false
  description       = "${var.name}-${each.key}: egressd gateway, target of the private default routes"
  tags              = { Name = "${var.name}-${each.key}" }
}

# The pair's public addresses: allowed connections leave from these, so
# partners can allowlist two fixed IPs.
resource "aws_eip" "egressd" {
  for_each          = local.sides
  domain            = "vpc"
  network_interface = aws_network_interface.egressd[each.key].id
  tags              = { Name = "${var.name}-${each.key}" }
}

# ---------------------------------------------------------------------------
# The instances.

resource "aws_instance" "egressd" {
  for_each             = local.sides
  ami                  = data.aws_ami.debian.id
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.egressd.name
  key_name             = var.key_name

  network_interface {
    network_interface_id = aws_network_interface.egressd[each.key].id
    device_index         = 0
  }

  # IMDSv2 only, and one hop: the role's credentials stay on this host
  # (egressd also never dials link-local addresses for clients).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted = true
  }

  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    egressd_url    = var.egressd_url
    egressd_sha256 = var.egressd_sha256
    # The unit file next to this directory, so that the example installs the
    # same unit as a manual setup.
    unit = file("${path.module}/../egressd.service")
    config = templatefile("${path.module}/egressd.yaml.tftpl", {
      name        = var.name
      side        = each.key
      sources     = local.client_cidrs
      resolver    = local.resolver
      allow       = var.allow
      policy_mode = var.policy_mode
      # This instance, and its peer (the other side).
      self_ip          = aws_network_interface.egressd[each.key].private_ip
      eni              = aws_network_interface.egressd[each.key].id
      route_table      = aws_route_table.private[each.key].id
      peer_ip          = aws_network_interface.egressd[each.value.peer].private_ip
      peer_eni         = aws_network_interface.egressd[each.value.peer].id
      peer_route_table = aws_route_table.private[each.value.peer].id
    })
  })
  # User data runs at first boot only: a new config means a new instance.
  # The peer carries both route tables meanwhile.
  user_data_replace_on_change = true

  tags = { Name = "${var.name}-${each.key}" }

  # The user data downloads egressd over the internet at first boot, which
  # needs the public address on the interface first.
  depends_on = [aws_eip.egressd]

  lifecycle {
    ignore_changes = [ami]
  }
}
