# t_layers.sh — the layer order of lib/ (lib/README): a file may include
# headers of its own folder and of folders in lower layers only.  Folders of
# one layer are siblings and do not include each other.  kernels/ (the CUDA
# code) sits at the layer of the backends.  Fails naming every offending
# #include, and on a folder of lib/ that has no layer.
set -u
cd "${DV2_ROOT:?}" || exit 1
rank() {
	case $1 in
	core) echo 0;; format|image) echo 1;; ops) echo 2;; ops/cpu|ops/cuda|kernels) echo 3;;
	model) echo 4;; search|train|embed|pack) echo 5;; curate|eval) echo 6;; cli) echo 7;;
	*) echo x;;
	esac
}
bad=0 n=0
for f in $(find lib kernels -name '*.[ch]' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | sort); do
	case $f in kernels/*) from=kernels;; *) from=$(dirname "${f#lib/}");; esac
	rf=$(rank "$from")
	if [ "$rf" = x ]; then echo "t_layers: $f: folder '$from' has no layer in lib/README"; bad=1; continue; fi
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
		n=$((n + 1))
		case $inc in
		*/*) to=$(dirname "$inc");;
		*) [ -f "$(dirname "$f")/$inc" ] && continue  # same folder (kernels/)
		   [ -f "kernels/$inc" ] && to=kernels || { echo "t_layers: $f: \"$inc\" is not a lib/FOLDER/ path"; bad=1; continue; };;
		esac
		[ "$to" = "$from" ] && continue
		rt=$(rank "$to")
		if [ "$rt" = x ] || [ "$rt" -ge "$rf" ]; then
			echo "t_layers: $f (layer $rf, $from) includes \"$inc\" (layer $rt, $to)"
			bad=1
		fi
	done
done
echo "t_layers: $n includes checked"
exit $bad
