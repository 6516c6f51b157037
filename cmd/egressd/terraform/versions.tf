terraform {
  # 1.5: the oldest release whose language everything here uses.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: aws_vpc_security_group_{ingress,egress}_rule and the instance's
      # network_interface block as used in main.tf.
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}
