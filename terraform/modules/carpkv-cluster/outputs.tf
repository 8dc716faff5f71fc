output "nodes" {
  description = "The node plan, by instance name: group, replica, zone, subnet (index and id), private ip, and the agent's raft/http/gossip addresses."
  value       = local.nodes

  precondition {
    condition     = local.zones_ok
    error_message = "Some group would have ${local.worst_zone_share} of its ${var.replicas} members in one zone, a majority: one zone outage would stop it. Give at least ${var.replicas} subnets in different zones (or set require_zone_spread = false for a lab)."
  }
  precondition {
    condition     = (var.ctl_url == null) == (var.ctl_sha256 == null)
    error_message = "ctl_url and ctl_sha256 go together: set both or neither."
  }
}

output "user_data" {
  description = "The cloud-init user data (#cloud-config) of each node, by instance name."
  value       = local.user_data
}

output "agent_config" {
  description = "The /etc/carpkv/agent.yaml each node's user data writes, by instance name."
  value       = local.agent_config
}

output "groups" {
  description = "Each shard group: its weight and its members' instance names."
  value = {
    for g in local.group_ids : g => {
      weight  = local.weights[g]
      members = [for n in local.placed : n.name if n.group == g]
    }
  }
}

output "http_addrs" {
  description = "Every agent's HTTP API address (private ip:port)."
  value       = [for n in local.placed : local.nodes[n.name].http_addr]
}

output "carpkv_addr" {
  description = "The value for CARPKV_ADDR (carpkvctl and kvclient): every agent's HTTP address, comma-separated."
  value       = join(",", [for n in local.placed : local.nodes[n.name].http_addr])
}

output "ansible_inventory" {
  description = "An Ansible inventory (YAML) of the nodes for ansible/: group carpkv with one child group carpkv_<group> per shard group, carpkv_ip set to each node's private ip."
  value = yamlencode({
    all = {
      children = {
        carpkv = {
          vars = {
            carpkv_raft_port   = var.ports.raft
            carpkv_http_port   = var.ports.http
            carpkv_gossip_port = var.ports.gossip
          }
          children = {
            for g in local.group_ids : "carpkv_${g}" => {
              vars = { carpkv_group_weight = local.weights[g] }
              hosts = {
                for n in local.placed : n.name => {
                  ansible_host = n.ip
                  carpkv_ip    = n.ip
                } if n.group == g
              }
            }
          }
        }
      }
    }
  })
}
