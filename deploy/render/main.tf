# The deployment test's root module: the carpkv-cluster module planned onto
# the test's Docker network, exactly as terraform/examples/aws plans it onto
# AWS subnets. `terraform apply` here creates nothing (the module has no
# resources); the test reads the outputs: node names and addresses, each
# node's cloud-init user data, and the Ansible inventory.

variable "name" {
  type = string
}

variable "network_cidr" {
  description = "The test's Docker network; three slices of it stand for three availability zones."
  type        = string
}

variable "agent_url" {
  type = string
}

variable "agent_sha256" {
  type = string
}

variable "groups" {
  description = "Shard groups: 2, then 3 when the test adds a group."
  type        = number
  default     = 2
}

variable "initial_groups" {
  description = "The first ring's groups, pinned when the test raises groups (null: groups)."
  type        = number
  default     = null
}

variable "agent_settings" {
  description = "The test's agent settings (the same go to Ansible's carpkv_settings)."
  type        = any
  default     = {}
}

module "cluster" {
  source         = "../../terraform/modules/carpkv-cluster"
  name           = var.name
  groups         = var.groups
  initial_groups = var.initial_groups
  replicas       = 3
  # Slices 1-3 of four (slice 0 holds Docker's gateway): one member of
  # each group per "zone", as on AWS.
  subnets = [for i, zone in ["zone-a", "zone-b", "zone-c"] : {
    zone = zone
    cidr = cidrsubnet(var.network_cidr, 2, i + 1)
  }]
  agent_url      = var.agent_url
  agent_sha256   = var.agent_sha256
  agent_settings = var.agent_settings
}

output "nodes" {
  value = module.cluster.nodes
}

output "user_data" {
  value = module.cluster.user_data
}

output "ansible_inventory" {
  value = module.cluster.ansible_inventory
}

output "carpkv_addr" {
  value = module.cluster.carpkv_addr
}
