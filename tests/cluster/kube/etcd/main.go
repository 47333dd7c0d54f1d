// Command etcd runs etcd's own server main, pinned by this module's go.mod, for `cargo cluster`.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
