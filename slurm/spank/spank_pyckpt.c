/*
 * spank_pyckpt.so: a Slurm SPANK plugin that lets a user checkpoint an
 * mpi4py job launched by srun by adding one option:
 *
 *     srun --mpi=pmix --pyckpt-dir=ckpt.d --pyckpt-interval=600 python3 app.py
 *
 * Options (srun, sbatch, salloc):
 *   --pyckpt-dir=DIR            checkpoint directory; turns pyckpt on for the
 *                               job step (a relative DIR is relative to the
 *                               step's working directory)
 *   --pyckpt-interval=SECONDS   periodic checkpoints
 *   --pyckpt-keep=K             committed checkpoints kept
 *   --pyckpt-key-file=FILE      the key that authenticates checkpoints
 *   --pyckpt-requeue            the job requeues itself at the checkpoint
 *                               signal (sbatch --signal=USR1@SECONDS, which
 *                               Slurm sends to the tasks): the ranks
 *                               checkpoint, hold, and rank 0 runs `scontrol
 *                               requeue`; the next start resumes
 *   --pyckpt-max-restarts=N     not requeued once restarted N times, and not
 *                               run when restarted more (default 10)
 *
 * In every task of a job step given --pyckpt-dir (slurmstepd, user_init),
 * the plugin sets what `pyckpt mpirun` sets for its ranks: LD_PRELOAD of the
 * interposer and the Python-rank library (`pyckpt preload-path`), PYCKPT_DIR
 * and the other PYCKPT_* variables of the options given, and PYTHONHASHSEED
 * (the job id, unless the job sets one: a restarted rank needs the seed of the
 * checkpointed one, which the checkpoint records). A step whose directory
 * holds a committed checkpoint resumes from it, as under `pyckpt mpirun`: the
 * Python-rank library does that in each task. With --pyckpt-requeue the
 * tasks get PYCKPT_SLURM_REQUEUE (the maximum restarts; pyckpt.slurm does
 * the rest), and srun refuses a directory whose run finished (rank 0 marks
 * it `complete`) and a job restarted more than --pyckpt-max-restarts times.
 *
 * The batch script's own step (sbatch --pyckpt-dir) and an interactive step
 * get the PYCKPT_* variables but not LD_PRELOAD: the shell and the commands
 * it runs (`pyckpt srun`, say) are not ranks. The sruns of the script get the
 * sbatch options (Slurm passes them on in the job's environment) and preload
 * their tasks. A step whose LD_PRELOAD holds the interposer already was set
 * up by `pyckpt srun` (or by hand), and the extern step runs none of the
 * job's programs: the plugin leaves both alone.
 *
 * plugstack.conf (the line the package installs in
 * PREFIX/share/pyckpt/plugstack.conf.d/pyckpt.conf):
 *     required /usr/lib/x86_64-linux-gnu/slurm-wlm/spank_pyckpt.so [preload=LIB[:LIB...]]
 * preload= overrides the installed libraries, which the plugin finds
 * relative to its own file (the install layout), wherever the prefix is.
 *
 * Written against spank.h of Slurm 22.05 (Debian 12's libslurm-dev); see
 * doc/slurm.md.
 */
#define _GNU_SOURCE  /* memrchr, dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(pyckpt, 1);

#if !defined(PYCKPT_SPANK_TO_LIBDIR) || !defined(PYCKPT_SPANK_LIBRARIES)
#error "PYCKPT_SPANK_TO_LIBDIR (the libdir relative to the plugin's directory) and PYCKPT_SPANK_LIBRARIES (the file names to preload, in order) are set by CMake"
#endif

/* The library whose presence in LD_PRELOAD means pyckpt is preloaded already
 * (by `pyckpt srun`, or by hand). */
#define INTERPOSER_NAME "libpyckpt_mpi.so"
#define VALUE_MAX 4096
/* pyckpt.slurm.DEFAULT_MAX_RESTARTS, the default of `pyckpt mpirun --max-restarts`. */
#define DEFAULT_MAX_RESTARTS 10
/* Written into the checkpoint directory when the run finished (pyckpt.slurm.COMPLETE_FILE). */
#define COMPLETE_FILE "complete"

/* The options of this job step, as given (empty: not given). */
static char option_dir[PATH_MAX];
static char option_interval[64];
static char option_keep[32];
static char option_key_file[PATH_MAX];
static int option_requeue;
static long option_max_restarts = -1;  /* -1: not given */
/* What the tasks preload: plugstack.conf's preload=, else the installed
 * libraries (installed_libraries()). */
static char preload[VALUE_MAX];

static int copy_option(char *to, size_t size, const char *name, const char *optarg)
{
	if (optarg == NULL || optarg[0] == '\0') {
		slurm_error("pyckpt: --%s needs a value", name);
		return -1;
	}
	if (strlen(optarg) >= size) {
		slurm_error("pyckpt: --%s: value longer than %zu characters", name, size - 1);
		return -1;
	}
	strcpy(to, optarg);
	return 0;
}

static int on_dir(int val, const char *optarg, int remote)
{
	(void)val, (void)remote;
	return copy_option(option_dir, sizeof(option_dir), "pyckpt-dir", optarg);
}

static int on_interval(int val, const char *optarg, int remote)
{
	char *end = NULL;
	double seconds;

	(void)val, (void)remote;
	if (copy_option(option_interval, sizeof(option_interval), "pyckpt-interval", optarg) != 0)
		return -1;
	errno = 0;
	seconds = strtod(optarg, &end);
	if (errno != 0 || end == optarg || *end != '\0' || !isfinite(seconds) || seconds <= 0) {
		slurm_error("pyckpt: --pyckpt-interval=%s: not a positive number of seconds", optarg);
		return -1;
	}
	return 0;
}

static int on_keep(int val, const char *optarg, int remote)
{
	char *end = NULL;
	long keep;

	(void)val, (void)remote;
	if (copy_option(option_keep, sizeof(option_keep), "pyckpt-keep", optarg) != 0)
		return -1;
	errno = 0;
	keep = strtol(optarg, &end, 10);
	if (errno != 0 || end == optarg || *end != '\0' || keep < 1) {
		slurm_error("pyckpt: --pyckpt-keep=%s: not a whole number of checkpoints, at least 1", optarg);
		return -1;
	}
	return 0;
}

static int on_key_file(int val, const char *optarg, int remote)
{
	(void)val, (void)remote;
	return copy_option(option_key_file, sizeof(option_key_file), "pyckpt-key-file", optarg);
}

static int on_requeue(int val, const char *optarg, int remote)
{
	(void)val, (void)optarg, (void)remote;
	option_requeue = 1;
	return 0;
}

static int on_max_restarts(int val, const char *optarg, int remote)
{
	char *end = NULL;

	(void)val, (void)remote;
	if (optarg == NULL || optarg[0] == '\0') {
		slurm_error("pyckpt: --pyckpt-max-restarts needs a value");
		return -1;
	}
	errno = 0;
	option_max_restarts = strtol(optarg, &end, 10);
	if (errno != 0 || *end != '\0' || option_max_restarts < 0 || option_max_restarts > INT_MAX) {
		slurm_error("pyckpt: --pyckpt-max-restarts=%s: not a whole number of restarts, at least 0", optarg);
		return -1;
	}
	return 0;
}

/* Registered in slurm_spank_init: sbatch and salloc see only registered options
 * (a `spank_options` table is srun's only). */
static struct spank_option options[] = {
	{"pyckpt-dir", "DIR",
	 "[pyckpt] checkpoint the mpi4py ranks of the job step into DIR, and resume them from DIR's latest "
	 "checkpoint if it has one", 1, 0, on_dir},
	{"pyckpt-interval", "SECONDS", "[pyckpt] checkpoint every SECONDS (with --pyckpt-dir)", 1, 0, on_interval},
	{"pyckpt-keep", "K", "[pyckpt] committed checkpoints kept (default 2; with --pyckpt-dir)", 1, 0, on_keep},
	{"pyckpt-key-file", "FILE",
	 "[pyckpt] the key that authenticates checkpoints (default ~/.config/pyckpt/key; with --pyckpt-dir)", 1, 0,
	 on_key_file},
	{"pyckpt-requeue", NULL,
	 "[pyckpt] at the checkpoint signal (sbatch --signal=USR1@SECONDS), checkpoint and requeue the job; it "
	 "resumes when Slurm starts it again (with --pyckpt-dir)", 0, 0, on_requeue},
	{"pyckpt-max-restarts", "N",
	 "[pyckpt] requeue at most N times (default 10; with --pyckpt-requeue)", 1, 0, on_max_restarts},
	SPANK_OPTIONS_TABLE_END
};

/* `preload` = the installed libraries, `pyckpt preload-path`'s list: in the
 * libdir of the prefix this plugin is installed in, found from its own path
 * (a package installed under any prefix, or unpacked elsewhere, stays whole). */
static int installed_libraries(void)
{
	Dl_info self;
	char plugin_dir[PATH_MAX], relative[PATH_MAX + sizeof(PYCKPT_SPANK_TO_LIBDIR) + 1], libdir[PATH_MAX];
	char names[] = PYCKPT_SPANK_LIBRARIES;
	char *saved = NULL;
	char *slash;
	size_t used = 0;

	if (dladdr((void *)installed_libraries, &self) == 0 || self.dli_fname == NULL ||
	    realpath(self.dli_fname, plugin_dir) == NULL || (slash = strrchr(plugin_dir, '/')) == NULL) {
		slurm_error("pyckpt: cannot find the plugin's own file to locate the libraries to preload; "
			    "give them with preload= in plugstack.conf (`pyckpt preload-path` prints them)");
		return -1;
	}
	*slash = '\0';
	snprintf(relative, sizeof(relative), "%s/%s", plugin_dir, PYCKPT_SPANK_TO_LIBDIR);
	if (realpath(relative, libdir) == NULL) {
		slurm_error("pyckpt: %s: %s (the libraries to preload are looked for there)", relative, strerror(errno));
		return -1;
	}
	for (char *name = strtok_r(names, ":", &saved); name != NULL; name = strtok_r(NULL, ":", &saved)) {
		const int n = snprintf(preload + used, sizeof(preload) - used, "%s%s/%s", used ? ":" : "", libdir, name);

		if (n < 0 || (size_t)n >= sizeof(preload) - used) {
			slurm_error("pyckpt: the libraries to preload from %s: path longer than %zu characters", libdir,
				    sizeof(preload) - 1);
			return -1;
		}
		used += (size_t)n;
	}
	return 0;
}

/* The options, in srun, sbatch, salloc and slurmstepd (which gets their
 * values); plugstack.conf's arguments: preload=LIB[:LIB...]. */
int slurm_spank_init(spank_t sp, int ac, char **av)
{
	const spank_context_t context = spank_context();

	if (context == S_CTX_LOCAL || context == S_CTX_ALLOCATOR || context == S_CTX_REMOTE) {
		for (struct spank_option *option = options; option->name != NULL; option++) {
			const spank_err_t rc = spank_option_register(sp, option);

			if (rc != ESPANK_SUCCESS) {
				slurm_error("pyckpt: cannot register --%s: %s", option->name, spank_strerror(rc));
				return -1;
			}
		}
	}
	preload[0] = '\0';
	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], "preload=", 8) == 0 && av[i][8] != '\0' && strlen(av[i] + 8) < sizeof(preload)) {
			strcpy(preload, av[i] + 8);
		} else {
			slurm_error("pyckpt: plugstack.conf: unknown or bad argument '%s' (known: preload=LIB[:LIB...])",
				    av[i]);
			return -1;
		}
	}
	return 0;
}

static long max_restarts(void)
{
	return option_max_restarts >= 0 ? option_max_restarts : DEFAULT_MAX_RESTARTS;
}

/* The run in --pyckpt-dir finished (its `complete` file, which names the
 * Slurm job that finished it): not resumed, refused (as `pyckpt mpirun`). */
static int refuse_finished_run(void)
{
	char path[PATH_MAX + sizeof(COMPLETE_FILE) + 1], text[512] = "", finisher[64] = "";
	const char *job = getenv("SLURM_JOB_ID"), *field;
	FILE *file;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", option_dir, COMPLETE_FILE);
	file = fopen(path, "r");
	if (file == NULL)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, file);
	text[n] = '\0';
	fclose(file);
	field = strstr(text, "\"slurm_job_id\": \"");
	if (field != NULL)
		sscanf(field + strlen("\"slurm_job_id\": \""), "%63[0-9]", finisher);
	if (job != NULL && strcmp(job, finisher) == 0)
		slurm_error("pyckpt: job %s finished its run in %s already (started again after its end): nothing to "
			    "resume", job, option_dir);
	else
		slurm_error("pyckpt: %s holds a run that finished%s%s%s: not resuming a finished run; remove %s (or the "
			    "directory) to run it again from the start, or use another --pyckpt-dir", option_dir,
			    finisher[0] ? " (Slurm job " : "", finisher, finisher[0] ? ")" : "", path);
	return -1;
}

/* A job restarted more often than --pyckpt-max-restarts: a job that never
 * gets further does not loop for ever. */
static int refuse_restarted_too_often(void)
{
	const char *count = getenv("SLURM_RESTART_COUNT");
	const long restarts = count ? strtol(count, NULL, 10) : 0;

	if (restarts <= max_restarts())
		return 0;
	slurm_error("pyckpt: job %s was restarted %ld times, more than --pyckpt-max-restarts %ld: not running it "
		    "again (its checkpoints stay in %s; raise --pyckpt-max-restarts and requeue it to go on)",
		    getenv("SLURM_JOB_ID") ? getenv("SLURM_JOB_ID") : "?", restarts, max_restarts(), option_dir);
	return -1;
}

/* srun/sbatch/salloc, once all options are read: the others need
 * --pyckpt-dir; a step (srun) of a job that requeues itself does not run
 * into a finished run or past its restarts. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	const spank_context_t context = spank_context();

	(void)sp, (void)ac, (void)av;
	if (context != S_CTX_LOCAL && context != S_CTX_ALLOCATOR)
		return 0;
	if (option_dir[0] == '\0' && (option_interval[0] || option_keep[0] || option_key_file[0] || option_requeue)) {
		slurm_error("pyckpt: --pyckpt-interval, --pyckpt-keep, --pyckpt-key-file and --pyckpt-requeue go with "
			    "--pyckpt-dir=DIR (the checkpoint directory)");
		return -1;
	}
	if (option_max_restarts >= 0 && !option_requeue) {
		slurm_error("pyckpt: --pyckpt-max-restarts goes with --pyckpt-requeue");
		return -1;
	}
	if (!option_requeue)
		return 0;
	if (refuse_finished_run() != 0)
		return -1;
	return context == S_CTX_LOCAL ? refuse_restarted_too_often() : 0;
}

static int set_variable(spank_t sp, const char *name, const char *value, int overwrite)
{
	const spank_err_t rc = spank_setenv(sp, name, value, overwrite);

	if (rc != ESPANK_SUCCESS && rc != ESPANK_ENV_EXISTS) {
		slurm_error("pyckpt: cannot set %s in the job step's environment: %s", name, spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* Whether a colon-separated LD_PRELOAD list holds the interposer already. */
static int preloads_interposer(const char *list)
{
	const char *entry = list;

	while (entry != NULL && *entry != '\0') {
		const char *end = strchr(entry, ':');
		const size_t length = end ? (size_t)(end - entry) : strlen(entry);
		const char *slash = memrchr(entry, '/', length);
		const char *base = slash ? slash + 1 : entry;

		if (strncmp(base, INTERPOSER_NAME, strlen(INTERPOSER_NAME)) == 0)
			return 1;
		entry = end ? end + 1 : NULL;
	}
	return 0;
}

/* Each library of `preload` must be there: a step that was asked for
 * checkpoints must not run without them. */
static int check_preload_libraries(void)
{
	char list[VALUE_MAX];
	char *saved = NULL;

	strcpy(list, preload);
	for (char *lib = strtok_r(list, ":", &saved); lib != NULL; lib = strtok_r(NULL, ":", &saved)) {
		if (access(lib, R_OK) != 0) {
			slurm_error("pyckpt: cannot preload %s: %s (plugstack.conf's preload= names the libraries "
				    "that `pyckpt preload-path` prints)", lib, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* LD_PRELOAD of the tasks: `preload`, then what the job preloads already. */
static int set_preload(spank_t sp, const char *current)
{
	char value[2 * VALUE_MAX];

	if (preload[0] == '\0' && installed_libraries() != 0)
		return -1;
	if (check_preload_libraries() != 0)
		return -1;
	if (current[0] != '\0')
		snprintf(value, sizeof(value), "%s:%s", preload, current);
	else
		snprintf(value, sizeof(value), "%s", preload);
	return set_variable(sp, "LD_PRELOAD", value, 1);
}

/* slurmstepd, before the tasks start: their environment. */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	uint32_t job_id = 0, step_id = 0;
	char current_preload[VALUE_MAX] = "";
	char seed[16];
	int ranks;

	(void)ac, (void)av;
	if (option_dir[0] == '\0')
		return 0;
	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS) {
		slurm_error("pyckpt: cannot get the job and step ids");
		return -1;
	}
	if (step_id == SLURM_EXTERN_CONT)
		return 0;
	ranks = step_id != SLURM_BATCH_SCRIPT && step_id != SLURM_INTERACTIVE_STEP;  /* else a shell */
	if (spank_getenv(sp, "LD_PRELOAD", current_preload, sizeof(current_preload)) != ESPANK_SUCCESS)
		current_preload[0] = '\0';
	if (ranks && preloads_interposer(current_preload))
		return 0;  /* set up by `pyckpt srun` (or by hand): its settings stand */
	if (set_variable(sp, "PYCKPT_DIR", option_dir, 1) != 0 ||
	    (option_interval[0] && set_variable(sp, "PYCKPT_INTERVAL", option_interval, 1) != 0) ||
	    (option_keep[0] && set_variable(sp, "PYCKPT_KEEP", option_keep, 1) != 0) ||
	    (option_key_file[0] && set_variable(sp, "PYCKPT_KEY_FILE", option_key_file, 1) != 0))
		return -1;
	snprintf(seed, sizeof(seed), "%u", job_id);
	if (set_variable(sp, "PYTHONHASHSEED", seed, 0) != 0)
		return -1;
	if (!ranks)
		return 0;
	if (option_requeue) {
		char value[32];

		snprintf(value, sizeof(value), "%ld", max_restarts());
		if (set_variable(sp, "PYCKPT_SLURM_REQUEUE", value, 1) != 0)
			return -1;
	}
	return set_preload(sp, current_preload);
}
