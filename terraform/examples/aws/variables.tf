variable "region" {
  description = "AWS region, e.g. eu-west-1."
  type        = string
}

variable "name" {
  description = "Cluster name: prefix of every resource and instance name."
  type        = string
  default     = "carpkv"
}

variable "groups" {
  description = "Number of shard groups."
  type        = number
  default     = 2
}

variable "initial_groups" {
  description = "Groups of the cluster's first ring; null: groups. Pin it to the original number before raising groups (docs/deploy.md, \"Add or remove a group\")."
  type        = number
  default     = null
}

variable "removed_groups" {
  description = "Group IDs removed from the ring (carpkvctl ring remove-group) whose instances are to be destroyed, e.g. [\"g2\"]."
  type        = list(string)
  default     = []
}

variable "replicas" {
  description = "Agents per shard group (Raft voters): 3 survives one failure, 5 two."
  type        = number
  default     = 3
}

variable "group_weights" {
  description = "Relative share of the keys per group ID (g1, g2, ...); unlisted groups weigh 1."
  type        = map(number)
  default     = {}
}

variable "agent_url" {
  description = "HTTPS URL of the static carpkv-agent binary for the instances' architecture (a release asset, or `aws s3 presign` of an object)."
  type        = string
}

variable "agent_sha256" {
  description = "sha256sum of that binary."
  type        = string
}

variable "ctl_url" {
  description = "Optional URL of carpkvctl, installed on every instance."
  type        = string
  default     = null
}

variable "ctl_sha256" {
  description = "sha256sum of carpkvctl at ctl_url."
  type        = string
  default     = null
}

variable "agent_settings" {
  description = "Further agent settings (flag name => value), e.g. { \"log-format\" = \"json\" }."
  type        = any
  default     = {}
}

variable "instance_type" {
  description = "EC2 instance type (its architecture must match the binary and ami_architecture)."
  type        = string
  default     = "t3.small"
}

variable "ami_architecture" {
  description = "amd64 or arm64: which Debian 12 AMI to look up when ami_id is not set."
  type        = string
  default     = "amd64"
  validation {
    condition     = contains(["amd64", "arm64"], var.ami_architecture)
    error_message = "ami_architecture must be amd64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI to run; null: the newest official Debian 12 AMI (owner 136693071363)."
  type        = string
  default     = null
}

variable "root_volume_gb" {
  description = "Size of each instance's root volume (gp3, encrypted), which holds /var/lib/carpkv."
  type        = number
  default     = 20
}

variable "vpc_id" {
  description = "An existing VPC to use, with subnet_ids; null: create a VPC with one public subnet per zone."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "With vpc_id: the subnets to spread the agents over, one per availability zone (at least `replicas` zones)."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR of the VPC created when vpc_id is null."
  type        = string
  default     = "10.42.0.0/16"
}

variable "zone_count" {
  description = "Availability zones to use when creating the VPC (at least as many as replicas, so that no group has a majority in one zone)."
  type        = number
  default     = 3
}

variable "public_ips" {
  description = "Give instances public addresses (needed to download the binary and to reach the API from outside without a VPN or NAT)."
  type        = bool
  default     = true
}

variable "api_cidrs" {
  description = "Client networks allowed to reach the agents' HTTP API (port 8000), e.g. your office or application subnets."
  type        = list(string)
}

variable "ssh_cidrs" {
  description = "Networks allowed to SSH in (port 22) for Ansible and debugging; empty: no SSH rule."
  type        = list(string)
  default     = []
}

variable "key_name" {
  description = "EC2 key pair for SSH (user admin on Debian AMIs); null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
