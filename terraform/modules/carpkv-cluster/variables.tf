variable "name" {
  description = "Prefix of the instance names: <name>-<group>-<replica>, e.g. carpkv-g1-1."
  type        = string
  default     = "carpkv"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.name))
    error_message = "name must be 1-41 lower-case letters, digits or '-', starting with a letter."
  }
}

variable "groups" {
  description = "Number of shard groups (g1, g2, ...). Each is a Raft group of `replicas` agents."
  type        = number
  default     = 2
  validation {
    condition     = var.groups >= 1 && var.groups <= 64 && floor(var.groups) == var.groups
    error_message = "groups must be a whole number from 1 to 64."
  }
}

variable "initial_groups" {
  description = <<-EOT
    How many groups the cluster's first ring had (g1..gN): the agents'
    expect-groups, and the groups whose nodes are gossip seeds. null: all
    of `groups`. Set it to the original number before you raise `groups`:
    the existing nodes' settings and user data then stay exactly as they
    are, and the new groups' agents start as standby groups until
    `carpkvctl ring add-group` adds them (docs/deploy.md, "Add or remove a
    group").
  EOT
  type        = number
  default     = null
  validation {
    condition     = var.initial_groups == null || try(var.initial_groups >= 1 && var.initial_groups <= 64 && floor(var.initial_groups) == var.initial_groups, false)
    error_message = "initial_groups must be null or a whole number from 1 to 64."
  }
}

variable "removed_groups" {
  description = <<-EOT
    Group IDs (e.g. ["g2"]) whose nodes are no longer planned: list a group
    here after `carpkvctl ring remove-group` removed it and `carpkvctl
    status` says it can be stopped. Every other node keeps its name,
    subnet and address. (Lowering `groups` drops the highest-numbered
    groups the same way.)
  EOT
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for g in var.removed_groups : can(regex("^g[1-9][0-9]*$", g))])
    error_message = "removed_groups lists group IDs such as \"g2\"."
  }
}

variable "replicas" {
  description = "Agents per shard group (its Raft voters). 3 survives one failure, 5 two."
  type        = number
  default     = 3
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 9 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number from 1 to 9 (the agent's --bootstrap-expect range)."
  }
}

variable "group_weights" {
  description = "Relative share of the keys per group ID (\"g1\", \"g2\", ...); groups not listed weigh 1."
  type        = map(number)
  default     = {}
  validation {
    condition     = alltrue([for w in values(var.group_weights) : w > 0 && w <= 1000000])
    error_message = "every group weight must be positive and at most 1e6."
  }
}

variable "subnets" {
  description = <<-EOT
    Where the nodes go: one entry per subnet, with its availability zone and
    CIDR (and, for the root module's use, its ID). Replica r of group g is
    placed in subnet (g + r) mod len(subnets), so with as many zones as
    replicas every group has one member per zone. Nodes get fixed private
    addresses from the subnet, starting at host number `host_offset`.
  EOT
  type = list(object({
    zone = string
    cidr = string
    id   = optional(string, "")
  }))
  validation {
    condition     = length(var.subnets) >= 1
    error_message = "subnets needs at least one entry."
  }
  validation {
    condition     = alltrue([for s in var.subnets : can(cidrhost(s.cidr, 0))])
    error_message = "every subnet cidr must be an IPv4 CIDR block such as 10.0.1.0/24."
  }
}

variable "host_offset" {
  description = "First host number used in each subnet (AWS reserves the first four addresses)."
  type        = number
  default     = 10
}

variable "require_zone_spread" {
  description = "Refuse a plan in which some group has a majority of its members in one zone (a zone outage would stop that group). Turn off only for tests or a single-zone lab."
  type        = bool
  default     = true
}

variable "ports" {
  description = "The agent's ports, the same on every node."
  type = object({
    raft   = optional(number, 7000)
    http   = optional(number, 8000)
    gossip = optional(number, 7946)
  })
  default = {}
}

variable "agent_url" {
  description = "HTTP(S) URL each node downloads the static carpkv-agent binary from at first boot (a release asset, an S3 object, ...)."
  type        = string
  validation {
    condition     = can(regex("^https?://", var.agent_url))
    error_message = "agent_url must be an http:// or https:// URL."
  }
}

variable "agent_sha256" {
  description = "SHA-256 of the binary at agent_url (hex); the node refuses a download that does not match."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_sha256))
    error_message = "agent_sha256 must be 64 lower-case hex digits (sha256sum's output)."
  }
}

variable "ctl_url" {
  description = "Optional URL of the carpkvctl binary, installed on every node for operators; null to skip."
  type        = string
  default     = null
}

variable "ctl_sha256" {
  description = "SHA-256 of the binary at ctl_url."
  type        = string
  default     = null
  validation {
    condition     = var.ctl_sha256 == null || can(regex("^[0-9a-f]{64}$", var.ctl_sha256))
    error_message = "ctl_sha256 must be 64 lower-case hex digits."
  }
}

variable "agent_settings" {
  description = <<-EOT
    Further agent settings written into /etc/carpkv/agent.yaml: flag name =>
    value, e.g. { "log-format" = "json", "max-in-flight" = 2048 } (see
    `carpkv-agent --help`). The layout settings (group, addresses,
    bootstrap-expect, expect-groups, retry-join, group-weight, data-dir) are
    the module's and cannot be set here.
  EOT
  type        = any
  default     = {}
  validation {
    condition = length(setintersection(keys(var.agent_settings), [
      "group", "data-dir", "raft-addr", "raft-advertise", "http-addr", "http-advertise",
      "gossip-addr", "gossip-advertise", "bootstrap", "bootstrap-expect", "expect-groups",
      "retry-join", "join", "group-weight", "node-id", "config",
    ])) == 0
    error_message = "agent_settings must not set the layout settings the module derives (group, addresses, bootstrap-expect, expect-groups, retry-join, join, group-weight, data-dir, node-id, config)."
  }
}
