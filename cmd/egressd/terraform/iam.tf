# The instances' role: what egressd's failover needs, and nothing else.
# Credentials reach egressd through IMDSv2 (metadata_options in main.tf).

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "egressd" {
  # Reading where the default routes point, and asking EC2 whether a silent
  # peer is still running before taking its tables over. Describe actions
  # cannot be limited to resources.
  statement {
    sid       = "ReadRoutesAndPeerStatus"
    actions   = ["ec2:DescribeRouteTables", "ec2:DescribeInstanceStatus"]
    resources = ["*"]
  }

  # Moving the default routes: only in this pair's two private route tables,
  # and only while they carry this pair's egressd-ha tag. No other route in
  # the account can be changed with these credentials.
  statement {
    sid       = "MovePrivateDefaultRoutes"
    actions   = ["ec2:ReplaceRoute"]
    resources = [for rt in aws_route_table.private : rt.arn]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/egressd-ha"
      values   = [var.name]
    }
  }
}

resource "aws_iam_role" "egressd" {
  name               = var.name
  description        = "egressd HA pair ${var.name}: moves the private default routes between the two gateways"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "egressd" {
  name   = "egressd-failover"
  role   = aws_iam_role.egressd.id
  policy = data.aws_iam_policy_document.egressd.json
}

resource "aws_iam_instance_profile" "egressd" {
  name = var.name
  role = aws_iam_role.egressd.name
}
