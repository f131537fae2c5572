# requeue.sh — sourced (bash) by the stage scripts of scripts/slurm/: runs a
# stage's command and, when Slurm warns of the time limit (USR1, from
# --signal=B:USR1@SECONDS) or preempts the job (TERM), stops the command
# and requeues the job, or only this task of a job array.  Every stage
# resumes when started again (dv2-embed --resume, dv2-pack, the dv2-hkmeans
# tree) or redoes a short step whose output is written atomically (dv2-dedup,
# dv2-retrieve, dv2-embed --merge), so a requeued job is the same command.
# The driver (scripts/slurm/submit) exports DV2_SLURM, the folder of these
# scripts, because Slurm runs a copy of the batch script elsewhere.

dv2_requeue_id() {
	if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
		echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
	else
		echo "${SLURM_JOB_ID:-}"
	fi
}

# dv2_run NAME COMMAND...: runs COMMAND; its status, or exit 0 after a requeue.
dv2_run() {
	local name=$1 rc
	shift
	_dv2_stop=0
	trap '_dv2_stop=1; echo "$name: time limit or preemption: stopping" >&2; [ -n "${_dv2_pid:-}" ] && kill -TERM "$_dv2_pid" 2>/dev/null' USR1 TERM
	"$@" &
	_dv2_pid=$!
	# wait returns early when a trapped signal arrives: keep waiting
	while :; do
		wait "$_dv2_pid"
		rc=$?
		kill -0 "$_dv2_pid" 2>/dev/null || break
	done
	trap - USR1 TERM
	_dv2_pid=
	if [ "$_dv2_stop" = 1 ]; then
		local id
		id=$(dv2_requeue_id)
		if [ -n "$id" ]; then
			echo "$name: requeueing job $id" >&2
			scontrol requeue "$id"
			exit 0
		fi
	fi
	return "$rc"
}

# dv2_shards DATASET: the shard files of a dataset, in manifest order.
dv2_shards() {
	local m=$1/manifest.json
	if [ ! -f "$m" ]; then
		echo "dv2_shards: $m: no such file (a dataset directory made by dv2-pack is needed)" >&2
		return 1
	fi
	sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' "$m"
}
