# Shared by scripts/demo.sh and scripts/rollout-demo.sh (sourced, not run): the programs, the
# process list stopped on exit, the HQ keys and root document, and waiting for the seeder.
# shellcheck shell=bash

bin=$PWD/build
seeder="$bin/seeder/patchswarm-seeder"
agent="$bin/daemon/patchswarmd"

# Every process started in the background is added here and stopped on exit (also on Ctrl-C).
pids=()
demo_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap demo_cleanup EXIT
trap 'exit 130' INT TERM

# demo_repo WORK: root and release keys in WORK/keys, the repository with root v1 and its fleet
# CA in WORK/repo.
demo_repo() {
  "$seeder" keygen --out "$1/keys/root" >/dev/null
  "$seeder" keygen --out "$1/keys/release" >/dev/null
  "$seeder" root init --repo "$1/repo" --root-pub "$1/keys/root.pub" \
    --release-pub "$1/keys/release.pub" --key "$1/keys/root.key" >/dev/null
}

# demo_wait_port HOST PORT: until something accepts connections there (10 s at most).
demo_wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:$2 after 10 s" >&2
  return 1
}
