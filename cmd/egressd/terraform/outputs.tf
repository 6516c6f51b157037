# Maps keyed by side ("a", "b").

output "instance_ids" {
  description = "The egressd instances."
  value       = { for side, i in aws_instance.egressd : side => i.id }
}

output "network_interface_ids" {
  description = "The interfaces the private default routes point at (each table's home interface while both instances are healthy)."
  value       = { for side, eni in aws_network_interface.egressd : side => eni.id }
}

output "private_ips" {
  description = "The instances' VPC addresses (ha.listen and the peer's ha.peer)."
  value       = { for side, eni in aws_network_interface.egressd : side => eni.private_ip }
}

output "public_ips" {
  description = "The Elastic IPs allowed traffic leaves from: give these to partners who allowlist by address."
  value       = { for side, eip in aws_eip.egressd : side => eip.public_ip }
}

output "route_table_ids" {
  description = "The private route tables egressd moves between the instances."
  value       = { for side, rt in aws_route_table.private : side => rt.id }
}
