# t_pack_safe.sh — dv2-pack against concurrent writers, hostile keys and
# silent empty results: a second writer into one dataset is refused naming
# the holder, a lock left by a killed run is taken over; keys with ".."
# anywhere are cleaned when packed so every dataset extracts in full;
# --extract does not follow a symbolic link inside DIR; empty stdin,
# --select or --labels matching nothing are errors (unless --allow-empty)
# and a failed pack leaves no empty directory.
. "$DV2_ROOT/tests/lib.sh"

SK=/usr/lib/python3/dist-packages/skimage/data
[ -f "$SK/rocket.jpg" ] || skip "no JPEG files in $SK"
mkdir img && cp "$SK/rocket.jpg" "$SK/coffee.png" img/

# ---- two writers into one dataset --------------------------------------------
# the first reads its path list from a FIFO, so it holds the directory while
# the second tries
mkfifo paths
dv2-pack -q -o ds - < paths 2> first.err &
first=$!
exec 3> paths
for i in $(seq 50); do [ -e ds/.dv2.lock ] && break; sleep 0.1; done
expect_exit 1 dv2-pack -o ds img
expect_grep "error: ds: the dataset is being written by process $first " err.txt
echo img/rocket.jpg >&3
exec 3>&-
wait $first
expect_eq "$?" 0 "first writer's exit"
expect_exit 0 dv2-pack --verify ds
dv2-pack --ls ds | cut -f2 > ds.txt
expect_eq "$(cat ds.txt)" "img/rocket.jpg" "records of the first writer"
[ ! -e ds/.dv2.lock ] && ok || fail "the lock outlived the pack"

# ---- a lock left by a killed run is taken over --------------------------------
mkfifo paths2
dv2-pack -q -o ds2 - < paths2 2>/dev/null &
killed=$!
exec 3> paths2
for i in $(seq 50); do [ -e ds2/.dv2.lock ] && break; sleep 0.1; done
kill -9 $killed; wait $killed 2>/dev/null
exec 3>&-
[ -e ds2/.dv2.lock ] && ok || fail "no lock file left by the killed run"
expect_exit 0 dv2-pack -o ds2 img
expect_grep "warning: ds2: taking over the lock of process $killed, which is gone" err.txt
expect_grep "2 records" err.txt

# ---- keys: ".." anywhere is cleaned at pack time --------------------------------
mkdir -p a/b && cp "$SK/rocket.jpg" a/b/r.jpg
expect_exit 0 dv2-pack -o dk1 a/b/../../a/b/r.jpg
dv2-pack --ls dk1 | cut -f2 > k1.txt
expect_eq "$(cat k1.txt)" "a/b/r.jpg" "key of a/b/../../a/b/r.jpg"
$PY - "$SK" <<'PYEOF'
import io, sys, tarfile
data = open(sys.argv[1] + "/rocket.jpg", "rb").read()
with tarfile.open("keys.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    for name in ["x/../../up.jpg", "/abs/a.jpg", "in/./dot.jpg", "p/q/../../../r.jpg"]:
        ti = tarfile.TarInfo(name); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
PYEOF
expect_exit 0 dv2-pack -o dkt keys.tar
dv2-pack --ls dkt | cut -f1,2 > kt.txt
cut -f2 kt.txt > kt_keys.txt
printf 'up.jpg\nabs/a.jpg\nin/dot.jpg\nr.jpg\n' > want_kt.txt
expect_same kt_keys.txt want_kt.txt
# ids follow the clean key (XXH64 of it)
want_id=$($PY -c 'import xxhash; print(xxhash.xxh64_intdigest(b"up.jpg"))' 2>/dev/null || echo skip)
[ "$want_id" = skip ] || expect_eq "$(head -n 1 kt.txt | cut -f1)" "$want_id" "id of the clean key"
expect_exit 0 dv2-pack --extract exk dkt
expect_eq "$(cd exk && find . -type f | sort | tr '\n' ' ')" "./abs/a.jpg ./in/dot.jpg ./r.jpg ./up.jpg " "extracted files"

# ---- --extract does not follow a symbolic link inside DIR --------------------------
mkdir outside exl && ln -s ../outside exl/abs
expect_exit 1 dv2-pack --extract exl dkt
expect_grep "exl/abs: a symbolic link inside exl: refusing to follow it" err.txt
[ -z "$(ls outside)" ] && ok || fail "--extract wrote through a symbolic link"

# ---- silent empty results are errors ----------------------------------------------
: | { expect_exit 1 dv2-pack -o e1 -; }
expect_grep "error: (stdin): empty" err.txt
[ ! -e e1 ] && ok || fail "a failed pack left the directory e1"
: | { expect_exit 0 dv2-pack --allow-empty -o e1b -; }
expect_exit 0 dv2-pack --verify e1b
: > none.ids
expect_exit 1 dv2-pack --select none.ids -o e2 img
expect_grep "error: --select none.ids: none of the 2 records is listed" err.txt
[ ! -e e2 ] && ok || fail "a failed pack left the directory e2"
expect_exit 1 dv2-pack --select none.ids -o - img
expect_empty out.txt
expect_exit 0 dv2-pack --allow-empty --select none.ids -o e2b img
printf 'nothere.jpg\t1\nother.jpg\t2\n' > nolab.tsv
expect_exit 1 dv2-pack --labels nolab.tsv -o e3 img
expect_grep "error: --labels nolab.tsv: none of its 2 keys is the key of a record" err.txt
[ ! -e e3 ] && ok || fail "a failed pack left the directory e3"
printf 'rocket.jpg\t1\n' > somelab.tsv
expect_exit 0 dv2-pack --labels somelab.tsv -o e4 img
expect_grep "warning: --labels somelab.tsv: 1 of 2 records have no label there" err.txt
# an existing directory is left in place
mkdir e5
expect_exit 1 dv2-pack --select none.ids -o e5 img
[ -d e5 ] && ok || fail "a failed pack removed a directory it did not create"
finish
