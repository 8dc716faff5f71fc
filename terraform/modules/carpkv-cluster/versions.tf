terraform {
  # Provider-free: the module only computes the node plan and renders user
  # data, so a root module can feed it to any cloud's instances.
  required_version = ">= 1.6"
}
