# t_man.sh — every program has a man page with the sections users look for,
# every man page renders without warnings, and every option in a program's
# --help is documented in its man page.
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
for page in "$DV2_ROOT"/man/*.[15]; do
	[ -f "$page" ] || continue
	if command -v groff >/dev/null 2>&1; then
		groff -man -Tutf8 -ww -z "$page" 2>warn.txt
		if [ -s warn.txt ]; then fail "$page: groff warnings:"; head -n 5 warn.txt >&2; else ok; fi
	fi
done
finish
