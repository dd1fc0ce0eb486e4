# Helpers to install and start the services the tests need. Sourced by .ci/run; developers can
# source it too (`source .ci/services.sh && start_postgres`). Everything binds to 127.0.0.1.

PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=${PG_PORT:-55432}
PG_DIR=${PG_DIR:-/tmp/s3dfs-ci-pg}

install_packages() {
  local want=()
  [ -x "$PG_BIN/initdb" ] || want+=(postgresql-15)
  command -v dockerd >/dev/null || want+=(docker.io)
  command -v rclone >/dev/null || want+=(rclone)
  command -v s3cmd >/dev/null || want+=(s3cmd)
  command -v curl >/dev/null || want+=(curl)
  command -v docker-compose >/dev/null || want+=(docker-compose)
  [ -x /usr/bin/chromium ] || want+=(chromium)
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing: ${want[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  fi
}

start_postgres() {
  if runuser -u postgres -- "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then
    echo "postgres already running on $PG_PORT"
  else
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" --auth=trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
      -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  fi
  export S3DFS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "postgres: $S3DFS_TEST_DATABASE_URL"
}

start_docker() {
  if docker info >/dev/null 2>&1; then
    echo "docker engine already running"
  else
    (dockerd >/tmp/s3dfs-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start"; tail -50 /tmp/s3dfs-dockerd.log; return 1; }
  fi
  export S3DFS_TEST_DOCKER=1
}

# Containers and volumes left by an earlier run on this machine would hold the test port pools.
remove_test_containers() {
  docker ps -aq --filter label=s3dfs.node-id | xargs -r docker rm -f >/dev/null
  docker volume ls -q --filter label=s3dfs.node-id | xargs -r docker volume rm >/dev/null
}

# No image can be pulled here: build a minimal base image from the host's own Node and the
# libraries it links, and hand it to the Dockerfile as its base image.
build_node_base_image() {
  if docker image inspect s3dfs-node-base:local >/dev/null 2>&1; then
    export S3DFS_DOCKER_BASE_IMAGE=s3dfs-node-base:local
    return
  fi
  local root
  root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/etc"
  cp "$(readlink -f "$(command -v node)")" "$root/usr/local/bin/node"
  # node's own libraries, and the rest of glibc's that prebuilt native addons link (@node-rs/crc32
  # needs librt): what node:20-bookworm-slim, the image users build from, has anyway.
  local extra
  extra=$(ls /lib/x86_64-linux-gnu/{librt.so.1,libdl.so.2,libpthread.so.0,libgcc_s.so.1,libm.so.6} 2>/dev/null || true)
  for lib in $(ldd "$(command -v node)" | grep -o '/[^ ]*') $extra; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  chmod 1777 "$root/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
  tar -C "$root" -c . | docker import - s3dfs-node-base:local >/dev/null
  rm -rf "$root"
  export S3DFS_DOCKER_BASE_IMAGE=s3dfs-node-base:local
  echo "built base image s3dfs-node-base:local"
}
