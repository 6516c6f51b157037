# What an operator sets: region, vpc_id, the two public subnets, the private
# subnets of each AZ, egressd_url and egressd_sha256 (and usually allow).
# The rest has defaults.

variable "region" {
  description = "AWS region of the VPC, e.g. eu-west-1."
  type        = string
}

variable "name" {
  description = "Name of this egressd pair: prefix of every resource's name, and the value of the egressd-ha tag that the IAM policy requires on the route tables egressd may change. Unique per account (IAM names are global)."
  type        = string
  default     = "egressd"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,40}$", var.name))
    error_message = "name: letters, digits and '-', at most 40 characters."
  }
}

variable "vpc_id" {
  description = "The existing VPC, e.g. vpc-0123456789abcdef0."
  type        = string
}

variable "public_subnet_id_a" {
  description = "Public subnet (default route to an internet gateway) in the first AZ: egressd instance a lives here."
  type        = string
}

variable "public_subnet_id_b" {
  description = "Public subnet in a second AZ: egressd instance b lives here."
  type        = string
}

variable "private_subnet_ids_a" {
  description = "Private subnets in the first AZ. They are associated with route table a, whose default route points at instance a (at instance b while a is down)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids_a) > 0
    error_message = "private_subnet_ids_a: list at least one subnet."
  }
}

variable "private_subnet_ids_b" {
  description = "Private subnets in the second AZ, associated with route table b."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids_b) > 0
    error_message = "private_subnet_ids_b: list at least one subnet."
  }
}

variable "client_cidrs" {
  description = "IPv4 networks whose traffic egressd filters (intercept.sources) and which the security group admits. Empty: the private subnets' own CIDRs."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrnetmask(c))])
    error_message = "client_cidrs: IPv4 CIDRs such as 10.0.1.0/24 (this example is IPv4 only)."
  }
}

variable "allow" {
  description = "policy.allow: the names (and addresses) the private subnets may reach. See the main README for the entry forms."
  type        = list(string)
  default = [
    ".amazonaws.com",
    ".debian.org",
    ".ubuntu.com",
  ]
}

variable "policy_mode" {
  description = "policy.mode: monitor (log would-be denials, deny nothing) while the allowlist is being reviewed, then enforce."
  type        = string
  default     = "monitor"

  validation {
    condition     = contains(["monitor", "enforce"], var.policy_mode)
    error_message = "policy_mode: monitor or enforce."
  }
}

variable "architecture" {
  description = "CPU architecture of the instances and of the egressd binary: arm64 (Graviton) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture: arm64 or x86_64."
  }
}

variable "instance_type" {
  description = "Instance type; it must match architecture (t4g.* for arm64, t3.* for x86_64). Network bandwidth, not CPU, is usually the limit."
  type        = string
  default     = "t4g.small"
}

variable "egressd_url" {
  description = "HTTPS URL of the egressd binary for this architecture (a release asset, or an object in S3 the instances can read)."
  type        = string

  validation {
    # Pasted into a single-quoted shell word in user-data.sh.tftpl.
    condition     = can(regex("^https://[^'[:space:]]+$", var.egressd_url))
    error_message = "egressd_url: an https:// URL without quotes or spaces."
  }
}

variable "egressd_sha256" {
  description = "SHA-256 of the binary at egressd_url (sha256sum output, 64 hex digits): the instances refuse to install anything else."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.egressd_sha256))
    error_message = "egressd_sha256: 64 lower-case hex digits, as printed by sha256sum."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH as user admin (Debian's default user); null: no key."
  type        = string
  default     = null
}

variable "ssh_cidrs" {
  description = "IPv4 networks allowed to SSH to the instances (port 22); empty: none."
  type        = list(string)
  default     = []
}
