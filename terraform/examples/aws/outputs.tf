output "agents" {
  description = "Each agent: group, zone, private and public address, HTTP API."
  value = {
    for name, n in module.cluster.nodes : name => {
      group      = n.group
      zone       = n.zone
      private_ip = n.ip
      public_ip  = aws_instance.agent[name].public_ip
      http       = n.http_addr
    }
  }
}

output "carpkv_addr" {
  description = "CARPKV_ADDR for clients inside the VPC: every agent's private HTTP address."
  value       = module.cluster.carpkv_addr
}

output "carpkv_addr_public" {
  description = "CARPKV_ADDR for clients in api_cidrs outside the VPC (public addresses)."
  value       = join(",", [for name, i in aws_instance.agent : "${i.public_ip}:8000" if i.public_ip != ""])
}

output "carpkvctl" {
  description = "How to reach the cluster with carpkvctl from a machine in api_cidrs."
  value       = "CARPKV_ADDR=${join(",", [for name, i in aws_instance.agent : "${coalesce(i.public_ip, i.private_ip)}:8000"])} carpkvctl status"
}

output "ansible_inventory" {
  description = "Inventory for ansible/ (upgrade.yml, site.yml): ansible_host is the public address when there is one."
  value = yamlencode({
    all = {
      children = {
        carpkv = {
          vars = { ansible_user = "admin", ansible_become = true }
          children = {
            for g, grp in module.cluster.groups : "carpkv_${g}" => {
              vars = { carpkv_group_weight = grp.weight }
              hosts = {
                for name in grp.members : name => {
                  ansible_host = coalesce(aws_instance.agent[name].public_ip, aws_instance.agent[name].private_ip)
                  carpkv_ip    = aws_instance.agent[name].private_ip
                }
              }
            }
          }
        }
      }
    }
  })
}
