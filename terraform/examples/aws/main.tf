# carpkv on AWS: a VPC (or an existing one), a security group that opens
# exactly the agent's ports inside the cluster and the API to api_cidrs,
# and one EC2 instance per agent, placed by the carpkv-cluster module so
# that no shard group has a majority in one availability zone. Each
# instance installs and starts its agent from the module's cloud-init user
# data on first boot. See docs/deploy.md.

locals {
  create_vpc = var.vpc_id == null
  ports      = { raft = 7000, http = 8000, gossip = 7946 }
}

# --- network ---------------------------------------------------------------

data "aws_availability_zones" "available" {
  state = "available"
}

resource "aws_vpc" "this" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  tags                 = { Name = var.name }
}

resource "aws_internet_gateway" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = var.name }
}

resource "aws_subnet" "this" {
  count                   = local.create_vpc ? var.zone_count : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index + 1)
  map_public_ip_on_launch = var.public_ips
  tags                    = { Name = "${var.name}-${data.aws_availability_zones.available.names[count.index]}" }
}

resource "aws_route_table" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this[0].id
  }
  tags = { Name = var.name }
}

resource "aws_route_table_association" "this" {
  count          = local.create_vpc ? var.zone_count : 0
  subnet_id      = aws_subnet.this[count.index].id
  route_table_id = aws_route_table.this[0].id
}

data "aws_subnet" "existing" {
  for_each = toset(local.create_vpc ? [] : var.subnet_ids)
  id       = each.value
}

locals {
  vpc_id = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  subnets = local.create_vpc ? [
    for s in aws_subnet.this : { zone = s.availability_zone, cidr = s.cidr_block, id = s.id }
    ] : [
    for id in var.subnet_ids : {
      zone = data.aws_subnet.existing[id].availability_zone
      cidr = data.aws_subnet.existing[id].cidr_block
      id   = id
    }
  ]
}

# --- the node plan and user data (provider-free module) --------------------

module "cluster" {
  source = "../../modules/carpkv-cluster"

  name           = var.name
  groups         = var.groups
  initial_groups = var.initial_groups
  removed_groups = var.removed_groups
  replicas       = var.replicas
  group_weights  = var.group_weights
  subnets        = local.subnets
  ports          = local.ports
  agent_url      = var.agent_url
  agent_sha256   = var.agent_sha256
  ctl_url        = var.ctl_url
  ctl_sha256     = var.ctl_sha256
  agent_settings = var.agent_settings
}

# --- security group: the agent's ports, nothing else -----------------------

resource "aws_security_group" "agents" {
  name_prefix = "${var.name}-agents-"
  description = "carpkv agents: Raft, gossip and HTTP among members; the HTTP API from api_cidrs"
  vpc_id      = local.vpc_id
  tags        = { Name = "${var.name}-agents" }
  lifecycle {
    create_before_destroy = true
  }
}

# Inside the cluster: every agent reaches every other on Raft (TCP), gossip
# (TCP and UDP) and HTTP (joins, forwarding hints, health checks).
resource "aws_vpc_security_group_ingress_rule" "cluster" {
  for_each = {
    raft        = { port = local.ports.raft, protocol = "tcp" }
    gossip-tcp  = { port = local.ports.gossip, protocol = "tcp" }
    gossip-udp  = { port = local.ports.gossip, protocol = "udp" }
    http-agents = { port = local.ports.http, protocol = "tcp" }
  }
  security_group_id            = aws_security_group.agents.id
  referenced_security_group_id = aws_security_group.agents.id
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = "carpkv ${each.key} between agents"
}

# Clients (applications, carpkvctl) reach the HTTP API.
resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each          = toset(var.api_cidrs)
  security_group_id = aws_security_group.agents.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.ports.http
  to_port           = local.ports.http
  description       = "carpkv HTTP API from ${each.value}"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(var.ssh_cidrs)
  security_group_id = aws_security_group.agents.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  description       = "SSH from ${each.value}"
}

# Out: the binary download at first boot and Debian's package mirrors.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.agents.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "downloads (agent binary, packages)"
}

# --- instances -------------------------------------------------------------

data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-${var.ami_architecture}-*"]
  }
}

resource "aws_instance" "agent" {
  for_each = module.cluster.nodes

  ami                         = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  instance_type               = var.instance_type
  subnet_id                   = each.value.subnet_id
  private_ip                  = each.value.ip
  associate_public_ip_address = var.public_ips
  vpc_security_group_ids      = [aws_security_group.agents.id]
  key_name                    = var.key_name
  user_data                   = module.cluster.user_data[each.key]

  metadata_options {
    http_tokens = "required" # IMDSv2 only
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_gb
    encrypted   = true
  }
  tags = {
    Name           = each.key
    "carpkv:group" = each.value.group
  }

  lifecycle {
    # User data runs at first boot only. A new agent release or setting is
    # rolled out with ansible/upgrade.yml, not by replacing every instance
    # at once; `terraform apply -replace` replaces one on purpose.
    ignore_changes = [ami, user_data]
  }
}
