// The --help texts of replay, rebuild and audit-bundle: plain strings, so `trainledger --help` loads neither onnxruntime nor a database driver.

/** As EXECUTION_PROVIDERS in replay/step/execution-providers.ts and ALL_PROJECTORS in projections/index.ts (a CLI spec checks both). */
export const PROVIDER_NAMES = 'cuda, webgpu, cpu';
export const PROJECTION_NAMES = 'ledger, rewards, metrics, disputes';

export const REPLAY_USAGE = `usage: trainledger replay <assignmentId> [flags]
Re-runs the recipe the assignment's verdict rests on (a dispute's replay verdict, else the validator's sampled replay)
and prints the recipe, the recorded and recomputed gradient digests and losses, the distance and the threshold, and
whether the recorded verdict reproduces. The runner pins the recipe's optimization level and thread count; --provider
picks where it runs (on CPU the re-run is bitwise the recorded one; elsewhere the calibrated tolerance decides).
  --data-dir DIR        the stopped server's data dir: PGlite in DIR/pglite, blobs in DIR/blobs (env TRAINLEDGER_DATA_DIR; default ./data)
  --database-url URL    PostgreSQL instead (env DATABASE_URL); blobs from --blobs or --data-dir
  --bundle FILE         an audit bundle (trainledger export --bundle) instead of a store; its blobs, else --blobs
  --blobs DIR           a blob folder (content-addressed, as <data dir>/blobs)
  --provider NAME       auto, ${PROVIDER_NAMES} (default cpu)
  --json                machine output: one JSON object
  -h, --help            this help
exit: 0 reproduced; 1 failed (a code says why); 2 usage; 3 VERDICT_NOT_REPRODUCED (or BUNDLE_INVALID);
      4 ASSIGNMENT_NOT_FOUND, NO_RECORDED_RECIPE, GRADIENT_BLOB_MISSING, DATA_DIR_NOT_FOUND; 5 DATA_DIR_IN_USE (a server holds the PGlite folder)`;

export const REBUILD_USAGE = `usage: trainledger rebuild [flags]
Replays the whole log into fresh tables beside the live ones (blue/green), brings both to the same log position,
compares them row for row, and swaps the rebuilt tables in. With no --projection, every projection, one after another.
PGlite is single-process: stop the server first (the command refuses a PGlite folder a server holds, exit 5); on
PostgreSQL it runs beside live servers, whose runners keep applying while the rebuild catches up.
  --data-dir DIR        the stopped server's data dir (PGlite in DIR/pglite; env TRAINLEDGER_DATA_DIR; default ./data)
  --database-url URL    PostgreSQL instead (env DATABASE_URL)
  --projection NAME     one of ${PROJECTION_NAMES} (default: all)
  --dry-run             rebuild and compare, then drop the rebuilt tables instead of swapping (a switch)
  --json                machine output: one JSON array of reports
  -h, --help            this help
Progress (events applied, events/s) goes to stderr when it is a terminal. Prints: projector, events applied, identical?, swapped.
exit: 0 done (every projection identical, or swapped in); 1 failed; 2 usage; 3 REBUILD_DIFFERS (--dry-run found a
      projection whose live tables differ from the log); 4 DATA_DIR_NOT_FOUND; 5 DATA_DIR_IN_USE`;

export const BUNDLE_AUDIT_USAGE = `usage: trainledger audit-bundle --bundle FILE [flags]
Verifies an audit bundle (trainledger export --bundle) on any machine, with no database and no server: every record's
chained digest, every stream's hash chain and head, that every event belongs to the run, that the recipe and digest
records are what the events say, the blobs' digests, and every settlement and payout re-derived with the domain's
deciders and payout rules against the invoice and budget events. With --replay or --replay-sample it also re-runs
verdicts' recipes (blobs from the bundle, else --blobs). Each problem names its record number, byte range and, inside
an event, its stream and revision.
  --bundle FILE         the bundle to verify
  --blobs DIR           a blob folder for replays when the bundle holds no blobs
  --replay              re-run every verdict that has a recipe (a switch)
  --replay-sample N     re-run N of them, chosen by --seed
  --seed S              seed of the sample (default 1)
  --provider NAME       auto, ${PROVIDER_NAMES} for replays (default cpu)
  --json                machine output: one JSON object
  -h, --help            this help
exit: 0 clean; 1 failed; 2 usage; 3 BUNDLE_PROBLEMS (each listed with its code); 4 BUNDLE_NOT_FOUND`;
