// `npm run calibrate`: measures noise between every available provider and optimization level, writes the tolerance thresholds.

import { writeFileSync } from 'node:fs';
import { referenceSteps } from './graphs/reference-steps.js';
import { CALIBRATION_FILE, calibrateStep, SAFETY_FACTOR, type CalibrationClass, type CalibrationFile, type GraphCalibration } from './compare/calibration.js';
import { EXECUTION_PROVIDERS, GRAPH_OPTIMIZATION_LEVELS, ONNXRUNTIME_VERSION, openSession, type ExecutionProviderName } from './step/execution-providers.js';

/** CPU thread counts calibrated: the reference is 1; replay workers may use more cores. */
const CALIBRATION_THREAD_COUNTS = [1, 2, 4];

async function main(): Promise<void> {
  const out = process.argv.find((a) => a.startsWith('--out='))?.slice('--out='.length) ?? CALIBRATION_FILE;
  const steps = referenceSteps();
  const providers = await availableProviders(steps[0]!.graphBytes);
  // Thread counts matter only where operators split work across CPU threads.
  const classes: CalibrationClass[] = providers.flatMap((provider) =>
    GRAPH_OPTIMIZATION_LEVELS.flatMap((level) => (provider === 'cpu' ? CALIBRATION_THREAD_COUNTS : [1]).map((threads) => ({ provider, level, threads }))),
  );
  console.error(`calibrate: providers available here: ${providers.join(', ')}; ${classes.length} classes against cpu/disabled/t1`);
  const graphs: Record<string, GraphCalibration> = {};
  for (const step of steps) graphs[step.graphDigest] = await calibrateStep(step, classes, (line) => console.error(line));
  const file: CalibrationFile = { version: 1, onnxruntimeVersion: ONNXRUNTIME_VERSION, measuredAt: new Date().toISOString(), safetyFactor: SAFETY_FACTOR, graphs };
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
  console.log(JSON.stringify({ wrote: out, graphs: Object.values(graphs).map((g) => ({ model: g.model, observed: g.observed, thresholds: g.thresholds })) }, null, 2));
}

async function availableProviders(graphBytes: Uint8Array): Promise<ExecutionProviderName[]> {
  const found: ExecutionProviderName[] = [];
  for (const provider of EXECUTION_PROVIDERS) {
    try {
      const opened = await openSession(graphBytes, { provider, graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
      await opened.session.release();
      found.push(provider);
    } catch (error) {
      console.error(`calibrate: ${provider} unavailable: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }
  return found;
}

main().catch((error: unknown) => {
  console.error(`calibrate: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
