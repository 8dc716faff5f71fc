#!/usr/bin/env bash
# Static checks of the deployment files, no containers needed (seconds):
#   - terraform fmt -check, and `terraform test` of the cluster module
#     (plan-only runs with assertions on its outputs, offline);
#   - the Ansible playbooks: --syntax-check and ansible-lint (production
#     profile);
#   - the systemd unit: systemd-analyze verify in a scratch root holding the
#     unit, the agent binary and systemd's own units (any message fails),
#     and the sysusers.d entry with systemd-sysusers --dry-run;
#   - shellcheck on the test scripts.
# TF names the terraform (or tofu) binary; the Makefile chooses it.
set -euo pipefail
cd "$(dirname "$0")/.."
TF=${TF:-terraform}
AGENT=${AGENT:-bin/carpkv-agent}
export CHECKPOINT_DISABLE=1 # terraform: no version check over the network
[ -f "${TF_CLI_CONFIG_FILE:-/nonexistent}" ] || unset TF_CLI_CONFIG_FILE
scratch=$(mktemp -d -t carpkv-deploy-check.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "terraform fmt -check ($TF)"
"$TF" fmt -check -recursive -diff terraform deploy/render

step "terraform test: terraform/modules/carpkv-cluster"
# The module has no providers, so init needs no network. Keep .terraform out
# of the work tree.
export TF_DATA_DIR=$scratch/tf-data
"$TF" -chdir=terraform/modules/carpkv-cluster init -input=false -no-color >/dev/null
"$TF" -chdir=terraform/modules/carpkv-cluster test -no-color
unset TF_DATA_DIR

step "ansible-playbook --syntax-check"
export ANSIBLE_CONFIG=$PWD/ansible/ansible.cfg
for p in site.yml upgrade.yml; do
  ansible-playbook -i ansible/inventory/example.yml --syntax-check "ansible/$p"
done

step "ansible-lint (production profile)"
(cd ansible && ansible-lint --offline --profile production -q site.yml upgrade.yml)
echo "ansible-lint: clean"

step "systemd-analyze verify systemd/carpkv-agent.service"
[ -x "$AGENT" ] || { echo "missing $AGENT: run make build" >&2; exit 1; }
root=$scratch/root
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$AGENT" "$root/usr/local/bin/carpkv-agent"
cp systemd/carpkv-agent.service "$root/etc/systemd/system/"
# verify exits 0 on settings it ignores, so any message is a failure.
out=$(systemd-analyze verify --root="$root" /etc/systemd/system/carpkv-agent.service 2>&1) || true
if [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
echo "systemd-analyze verify: clean"

step "systemd-sysusers --dry-run systemd/carpkv.sysusers"
mkdir -p "$scratch/users/etc"
out=$(systemd-sysusers --root="$scratch/users" --dry-run "$PWD/systemd/carpkv.sysusers" 2>&1)
grep -q "Creating user 'carpkv'" <<<"$out" || { echo "$out" >&2; exit 1; }
echo "sysusers: creates user carpkv"

step "shellcheck deploy/*.sh"
shellcheck -x deploy/*.sh
echo "shellcheck: clean"
echo
echo "deploy-check: all passed"
