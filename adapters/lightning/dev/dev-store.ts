// Persists the dev network's state to <dataDir>/dev-lightning.json atomically (temp file, fsync, rename), or nowhere.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseState, serializeState, type DevState } from './dev-state.js';

export const DEV_STATE_FILE = 'dev-lightning.json';

export interface DevStore {
  load(): DevState | null;
  /** Writes the state when it differs from what was last written; synchronous so no await can interleave a half-written state. */
  save(state: DevState): void;
}

export function openDevStore(dataDir: string | undefined): DevStore {
  return dataDir === undefined ? new MemoryStore() : new FileStore(dataDir);
}

class MemoryStore implements DevStore {
  load(): DevState | null {
    return null;
  }

  save(): void {}
}

class FileStore implements DevStore {
  private readonly path: string;
  private lastWritten = '';

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, DEV_STATE_FILE);
  }

  load(): DevState | null {
    if (!existsSync(this.path)) return null;
    const text = readFileSync(this.path, 'utf8');
    try {
      const state = parseState(text);
      this.lastWritten = text;
      return state;
    } catch (error) {
      throw new Error(`${this.path} is not a readable dev Lightning state (${(error as Error).message}); move it away to start a fresh dev network`);
    }
  }

  save(state: DevState): void {
    const text = serializeState(state);
    if (text === this.lastWritten) return;
    // A crash mid-write leaves only the temp file behind; the rename swaps in a complete file or nothing.
    const temporary = `${this.path}.tmp`;
    const fd = openSync(temporary, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, this.path);
    this.lastWritten = text;
  }
}
