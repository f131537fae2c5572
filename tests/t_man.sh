# t_man.sh — every program has a man page with the sections users look for,
# every man page (programs, formats, the dv2(7) overview) renders without
# warnings and has EXIT STATUS and EXAMPLES, every option in a program's
# --help is documented in its man page, and dv2(7) names every page and
# documents every environment variable that lib/ and cmd/ read.
. "$DV2_ROOT/tests/lib.sh"
command -v man >/dev/null 2>&1 || command -v groff >/dev/null 2>&1 || skip "neither man nor groff installed"
for p in "$DV2_BIN"/dv2-*; do
	[ -x "$p" ] || continue
	name=$(basename "$p")
	page="$DV2_ROOT/man/$name.1"
	if [ ! -f "$page" ]; then fail "$name has no man page man/$name.1"; continue; fi
	ok
	for sec in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES; do
		if grep -q "^\.SH \"\{0,1\}$sec" "$page"; then ok; else fail "$page: no $sec section"; fi
	done
	"$p" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u > opts.txt
	while read -r o; do
		esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
		if grep -q -e "$esc" -e "$o" "$page"; then ok; else fail "$page does not document $o"; fi
	done < opts.txt
done
for page in "$DV2_ROOT"/man/*.[157]; do
	[ -f "$page" ] || continue
	for sec in NAME "EXIT STATUS" EXAMPLES "SEE ALSO"; do
		if grep -q "^\.SH \"\{0,1\}$sec" "$page"; then ok; else fail "$page: no $sec section"; fi
	done
	case $page in */dv2-*)
		if sed -n '/^\.SH "\{0,1\}SEE ALSO/,$p' "$page" | grep -q '^\.BR dv2 (7)'; then ok
		else fail "$page: SEE ALSO does not name dv2(7)"; fi;;
	esac
	if command -v groff >/dev/null 2>&1; then
		groff -man -Tutf8 -ww -z "$page" 2>warn.txt
		if [ -s warn.txt ]; then fail "$page: groff warnings:"; head -n 5 warn.txt >&2; else ok; fi
	fi
done
# the overview page
ov="$DV2_ROOT/man/dv2.7"
if [ -f "$ov" ]; then
	for sec in DESCRIPTION FILES "COMMON OPTIONS" ENVIRONMENT "THE OFFICIAL DINOV2 CODE"; do
		if grep -q "^\.SH \"\{0,1\}$sec" "$ov"; then ok; else fail "$ov: no $sec section"; fi
	done
	sed -n '/^\.SH "\{0,1\}SEE ALSO/,/^\.SH/p' "$ov" > seealso.txt
	for page in "$DV2_ROOT"/man/dv2-*.[15]; do
		n=$(basename "$page"); sec=${n##*.}; n=${n%.*}
		if grep -q "^\.BR $n ($sec)" seealso.txt; then ok; else fail "$ov: SEE ALSO does not name $n($sec)"; fi
	done
	# the variables the code reads: getenv("NAME") and the launchers' lists
	grep -rhoE 'getenv\("[A-Z][A-Z0-9_]*"\)' "$DV2_ROOT/lib" "$DV2_ROOT/cmd" | sed 's/.*("\(.*\)")/\1/' > env.txt
	grep -rhoE '"(OMPI|PMI|PMIX|SLURM|MPI|LOCAL)_?[A-Z_]*"' "$DV2_ROOT/lib/core/dist.c" "$DV2_ROOT/lib/ops/cuda/cuda.cu" |
		tr -d '"' >> env.txt
	[ -s env.txt ] && ok || fail "no getenv found in lib/ and cmd/"
	sed -n '/^\.SH ENVIRONMENT/,/^\.SH/p' "$ov" > envsec.txt
	for v in $(sort -u env.txt); do
		if grep -q -w -e "$v" envsec.txt; then ok; else fail "$ov: ENVIRONMENT does not document $v"; fi
	done
else
	fail "no overview page man/dv2.7"
fi
finish
