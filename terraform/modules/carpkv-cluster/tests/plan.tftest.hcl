# Offline tests of the node plan and the rendered user data: plan-only runs
# (the module has no resources and no providers), assertions on outputs.
# Run with `terraform test` in the module directory (make deploy-check).

variables {
  name         = "kv"
  agent_url    = "https://downloads.example.com/carpkv-agent"
  agent_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  subnets = [
    { zone = "eu-west-1a", cidr = "10.0.1.0/24", id = "subnet-a" },
    { zone = "eu-west-1b", cidr = "10.0.2.0/24", id = "subnet-b" },
    { zone = "eu-west-1c", cidr = "10.0.3.0/24", id = "subnet-c" },
  ]
}

run "two_groups_of_three_one_member_per_zone" {
  command = plan

  assert {
    condition     = length(output.nodes) == 6
    error_message = "2 groups x 3 replicas must plan 6 nodes, got ${length(output.nodes)}"
  }
  assert {
    condition     = sort(keys(output.nodes)) == tolist(["kv-g1-1", "kv-g1-2", "kv-g1-3", "kv-g2-1", "kv-g2-2", "kv-g2-3"])
    error_message = "instance names must be <name>-<group>-<replica>"
  }
  assert {
    condition = alltrue([
      for g in ["g1", "g2"] : length(distinct([for n in output.nodes : n.zone if n.group == g])) == 3
    ])
    error_message = "each group must have one member in each of the three zones"
  }
  assert {
    condition     = length(distinct([for n in output.nodes : n.ip])) == 6
    error_message = "private addresses must be unique"
  }
  assert {
    condition     = alltrue([for n in output.nodes : n.subnet_id == ["subnet-a", "subnet-b", "subnet-c"][n.subnet] && cidrhost(["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"][n.subnet], 0) == cidrhost("${n.ip}/24", 0)])
    error_message = "every node's address must lie in the subnet it is placed in"
  }
  assert {
    condition     = output.nodes["kv-g1-1"].ip == "10.0.1.10" && output.nodes["kv-g2-1"].ip == "10.0.2.11"
    error_message = "addresses start at host_offset and count up per subnet"
  }
  assert {
    condition     = output.nodes["kv-g2-3"].http_addr == "${output.nodes["kv-g2-3"].ip}:8000" && output.nodes["kv-g2-3"].gossip_addr == "${output.nodes["kv-g2-3"].ip}:7946"
    error_message = "default ports are raft 7000, http 8000, gossip 7946"
  }
  assert {
    condition     = length(split(",", output.carpkv_addr)) == 6 && join(",", output.groups["g2"].members) == "kv-g2-1,kv-g2-2,kv-g2-3"
    error_message = "carpkv_addr must list every agent and groups every member"
  }
}

run "agent_settings_derive_from_the_layout" {
  command = plan

  assert {
    condition     = yamldecode(output.agent_config["kv-g2-2"]).group == "g2"
    error_message = "the config must name the node's group"
  }
  assert {
    condition = alltrue([for name, c in output.agent_config :
      yamldecode(c)["bootstrap-expect"] == 3 && yamldecode(c)["expect-groups"] == 2
    ])
    error_message = "bootstrap-expect must be the replicas and expect-groups the groups"
  }
  assert {
    condition = alltrue([for name, c in output.agent_config :
      length(yamldecode(c)["retry-join"]) == 5 && !contains(yamldecode(c)["retry-join"], output.nodes[name].gossip_addr)
    ])
    error_message = "retry-join must list five other agents' gossip addresses, never the node itself"
  }
  assert {
    condition = alltrue([for name, c in output.agent_config :
      yamldecode(c)["http-advertise"] == output.nodes[name].http_addr && yamldecode(c)["raft-advertise"] == output.nodes[name].raft_addr && yamldecode(c)["http-addr"] == "0.0.0.0:8000"
    ])
    error_message = "the agent listens on all interfaces and advertises its private address"
  }
  assert {
    condition     = strcontains(output.agent_config["kv-g1-1"], "\"group-weight\": 1.0\n")
    error_message = "a whole group weight must be written as a float (1.0): the agent's YAML reader refuses an int"
  }
}

run "user_data_is_cloud_config_that_installs_the_agent" {
  command = plan

  assert {
    condition     = alltrue([for u in values(output.user_data) : startswith(u, "#cloud-config\n")])
    error_message = "user data must start with #cloud-config"
  }
  assert {
    condition = alltrue([for u in values(output.user_data) :
      [for f in yamldecode(u).write_files : f.path] == ["/usr/lib/sysusers.d/carpkv.conf", "/etc/systemd/system/carpkv-agent.service", "/etc/carpkv/agent.yaml", "/usr/local/sbin/carpkv-install"]
    ])
    error_message = "user data must write the sysusers entry, the unit, the settings and the install script"
  }
  assert {
    condition     = yamldecode(output.user_data["kv-g1-3"]).write_files[1].content == file("../../../systemd/carpkv-agent.service")
    error_message = "the unit in the user data must be systemd/carpkv-agent.service"
  }
  assert {
    condition     = yamldecode(output.user_data["kv-g1-3"]).write_files[2].content == output.agent_config["kv-g1-3"]
    error_message = "the user data must carry the node's own settings"
  }
  assert {
    condition     = strcontains(yamldecode(output.user_data["kv-g1-3"]).write_files[3].content, "agent_sha256='9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'")
    error_message = "the install script must verify the configured digest"
  }
  assert {
    condition     = yamldecode(output.user_data["kv-g1-3"]).runcmd == [["/usr/local/sbin/carpkv-install"]]
    error_message = "runcmd must run the install script"
  }
  assert {
    condition     = alltrue([for u in values(output.user_data) : length(u) < 16384])
    error_message = "user data must fit EC2's 16 KiB limit"
  }
}

run "weights_and_settings" {
  command = plan

  variables {
    group_weights  = { g2 = 2, g3 = 0.5 }
    groups         = 3
    agent_settings = { "log-format" = "json", "max-in-flight" = 2048 }
  }

  assert {
    condition     = yamldecode(output.agent_config["kv-g2-1"])["group-weight"] == 2 && strcontains(output.agent_config["kv-g2-1"], "\"group-weight\": 2.0\n")
    error_message = "g2 must weigh 2.0"
  }
  assert {
    condition     = yamldecode(output.agent_config["kv-g3-1"])["group-weight"] == 0.5 && yamldecode(output.agent_config["kv-g1-1"])["group-weight"] == 1
    error_message = "g3 must weigh 0.5 and unlisted g1 1"
  }
  assert {
    condition     = yamldecode(output.agent_config["kv-g1-1"])["max-in-flight"] == 2048 && yamldecode(output.agent_config["kv-g1-1"])["log-format"] == "json"
    error_message = "agent_settings must reach the config with their types"
  }
  assert {
    condition     = output.groups["g2"].weight == 2 && length(output.nodes) == 9
    error_message = "3 groups x 3 replicas with the given weights"
  }
}

run "ansible_inventory_maps_groups" {
  command = plan

  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children.carpkv.children) == ["carpkv_g1", "carpkv_g2"]
    error_message = "the inventory must have one carpkv_<group> child group per shard group"
  }
  assert {
    condition     = yamldecode(output.ansible_inventory).all.children.carpkv.children.carpkv_g2.hosts["kv-g2-1"].carpkv_ip == output.nodes["kv-g2-1"].ip
    error_message = "each host must carry its private address as carpkv_ip"
  }
}

run "refuses_a_zone_majority" {
  command = plan

  variables {
    subnets = [
      { zone = "eu-west-1a", cidr = "10.0.1.0/24" },
      { zone = "eu-west-1b", cidr = "10.0.2.0/24" },
    ]
  }
  expect_failures = [output.nodes]
}

run "two_subnets_in_one_zone_count_as_one_zone" {
  command = plan

  variables {
    subnets = [
      { zone = "eu-west-1a", cidr = "10.0.1.0/24" },
      { zone = "eu-west-1a", cidr = "10.0.4.0/24" },
      { zone = "eu-west-1b", cidr = "10.0.2.0/24" },
    ]
  }
  expect_failures = [output.nodes]
}

run "single_zone_lab_when_spread_is_waived" {
  command = plan

  variables {
    subnets             = [{ zone = "lab", cidr = "192.168.10.0/24" }]
    require_zone_spread = false
  }
  assert {
    condition     = sort([for n in output.nodes : n.ip]) == tolist(["192.168.10.10", "192.168.10.11", "192.168.10.12", "192.168.10.13", "192.168.10.14", "192.168.10.15"])
    error_message = "one subnet takes consecutive addresses"
  }
}

run "five_replicas_fit_three_zones" {
  command = plan

  variables {
    replicas = 5
  }
  assert {
    condition     = length(output.nodes) == 10
    error_message = "2 x 5 nodes"
  }
}

run "rejects_a_bad_digest" {
  command = plan

  variables {
    agent_sha256 = "not-a-digest"
  }
  expect_failures = [var.agent_sha256]
}

run "rejects_layout_keys_in_agent_settings" {
  command = plan

  variables {
    agent_settings = { "bootstrap-expect" = 5 }
  }
  expect_failures = [var.agent_settings]
}

# Adding a group to a running cluster: raise `groups` and pin
# `initial_groups` to the first ring's size. The existing nodes' plan,
# settings and user data must not change at all (on a cloud, a changed
# address or subnet replaces an instance, a changed user data churns it);
# the new group's nodes are only additions and start as a standby group
# (the same expect-groups, seeds among the existing nodes).
run "a_cluster_of_two_groups" {
  command = plan

  variables {
    groups = 2
  }
  assert {
    condition     = length(output.nodes) == 6
    error_message = "2 x 3 nodes"
  }
}

run "raising_groups_only_adds_the_new_groups_nodes" {
  command = plan

  variables {
    groups         = 3
    initial_groups = 2
  }
  assert {
    condition     = sort(setsubtract(keys(output.nodes), keys(run.a_cluster_of_two_groups.nodes))) == tolist(["kv-g3-1", "kv-g3-2", "kv-g3-3"]) && length(setsubtract(keys(run.a_cluster_of_two_groups.nodes), keys(output.nodes))) == 0
    error_message = "going from 2 to 3 groups must add kv-g3-1..3 and keep every existing node"
  }
  assert {
    condition     = alltrue([for name, n in run.a_cluster_of_two_groups.nodes : output.nodes[name] == n])
    error_message = "an existing node's placement (subnet, zone, address) must not change"
  }
  assert {
    condition     = alltrue([for name, c in run.a_cluster_of_two_groups.agent_config : output.agent_config[name] == c])
    error_message = "an existing node's agent settings must not change"
  }
  assert {
    condition     = alltrue([for name, u in run.a_cluster_of_two_groups.user_data : output.user_data[name] == u])
    error_message = "an existing node's user data must not change"
  }
  assert {
    condition     = length(distinct([for n in output.nodes : n.ip])) == 9 && length(distinct([for n in output.nodes : n.zone if n.group == "g3"])) == 3
    error_message = "the new group's nodes get free addresses, one per zone"
  }
  assert {
    condition = alltrue([for name in ["kv-g3-1", "kv-g3-2", "kv-g3-3"] :
      yamldecode(output.agent_config[name])["expect-groups"] == 2 && yamldecode(output.agent_config[name])["bootstrap-expect"] == 3 && yamldecode(output.agent_config[name]).group == "g3"
    ])
    error_message = "the new group's agents form a group of 3 and keep the first ring's expect-groups"
  }
  assert {
    condition = alltrue([for name in ["kv-g3-1", "kv-g3-2", "kv-g3-3"] :
      length(yamldecode(output.agent_config[name])["retry-join"]) == 5 && length(setsubtract(yamldecode(output.agent_config[name])["retry-join"], [for n in run.a_cluster_of_two_groups.nodes : n.gossip_addr])) == 0
    ])
    error_message = "the new group's agents must join through five of the existing agents"
  }
  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children.carpkv.children) == ["carpkv_g1", "carpkv_g2", "carpkv_g3"]
    error_message = "the inventory must gain carpkv_g3"
  }
}

run "without_initial_groups_expect_groups_follows_groups" {
  command = plan

  variables {
    groups = 3
  }
  assert {
    condition     = yamldecode(output.agent_config["kv-g1-1"])["expect-groups"] == 3 && output.agent_config["kv-g1-1"] != run.a_cluster_of_two_groups.agent_config["kv-g1-1"]
    error_message = "a new cluster's first ring has all of `groups` (which is why a growing one pins initial_groups)"
  }
}

# Removing a group: after `carpkvctl ring remove-group`, list it in
# removed_groups (or lower `groups` for the highest-numbered one). Only its
# nodes go; every other node keeps its name, subnet and address.
run "removing_the_last_group_gives_back_the_two_group_plan" {
  command = plan

  variables {
    groups         = 3
    initial_groups = 2
    removed_groups = ["g3"]
  }
  assert {
    condition     = output.nodes == run.a_cluster_of_two_groups.nodes && output.user_data == run.a_cluster_of_two_groups.user_data
    error_message = "removing g3 must leave exactly the nodes and user data from before it was added"
  }
}

run "removing_a_middle_group_keeps_the_others_addresses" {
  command = plan

  variables {
    groups         = 3
    initial_groups = 2
    removed_groups = ["g2"]
  }
  assert {
    condition     = sort(keys(output.nodes)) == tolist(["kv-g1-1", "kv-g1-2", "kv-g1-3", "kv-g3-1", "kv-g3-2", "kv-g3-3"])
    error_message = "only g2's nodes may go"
  }
  assert {
    condition     = alltrue([for name, n in output.nodes : n == run.raising_groups_only_adds_the_new_groups_nodes.nodes[name]])
    error_message = "the remaining nodes must keep their placement and addresses"
  }
  assert {
    condition = alltrue([for name, c in output.agent_config :
      length(setintersection(yamldecode(c)["retry-join"], [for n in run.a_cluster_of_two_groups.nodes : n.gossip_addr if n.group == "g2"])) == 0
    ])
    error_message = "no node may list a removed group's agent as a gossip seed"
  }
  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children.carpkv.children) == ["carpkv_g1", "carpkv_g3"]
    error_message = "the inventory must drop carpkv_g2"
  }
}

run "rejects_a_bad_initial_groups" {
  command = plan

  variables {
    initial_groups = 0
  }
  expect_failures = [var.initial_groups]
}
