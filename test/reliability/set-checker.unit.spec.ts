// The SIGKILL suite's set checker can fail: each must-be-0 count goes up on the history that breaks it, and stays 0 on a clean one.

import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { checkSet, revisionGaps, type LoggedEvent, type SetOperation } from './set-checker.js';

/** An operation's key as the server's command keys begin: http:<64 hex>. */
const K = (name: string) => `http:${createHash('sha256').update(name).digest('hex')}`;
/** An event: `http:x` names operation x's command (of type `command`); any other key is the server's own or none. */
const ev = (key: string | null, streamId: string, revision: number, type = 'WorkAssigned', command = 'AssignWork'): LoggedEvent => ({
  key: key?.startsWith('http:') ? `${K(key.slice(5))}:${command}` : key, streamId, revision, type,
});
const op = (key: string, outcomes: SetOperation['outcomes'], acknowledgedEvents: number | null = outcomes.includes('ok') ? 1 : null): SetOperation => ({ key: K(key.slice(5)), outcomes, acknowledgedEvents });

describe('the set checker', () => {
  it('passes a clean history and counts recovered and never-stored unknowns', () => {
    const report = checkSet(
      [op('http:a', ['ok']), op('http:b', ['unknown', 'ok']), op('http:c', ['unknown']), op('http:d', ['fail']), op('http:e', ['unknown', 'fail']), op('http:f', ['ok'], 0)],
      [ev('http:a', 's-1', 0), ev('http:b', 's-1', 1), ev('http:c', 's-2', 0), ev(null, 's-2', 1, 'InvoiceOpened'), ev('escrow:x', 's-2', 2)],
    );
    expect(report).toMatchObject({ attempted: 6, acknowledged: 3, failed: 2, indeterminate: 1, lost: 0, unexpected: 0, duplicated: 0, failedButStored: 0, recovered: 2, unknownNotStored: 1 });
  });

  it('counts an acknowledged command the log lacks as lost', () => {
    const report = checkSet([op('http:a', ['ok']), op('http:b', ['unknown', 'ok'], 2)], [ev('http:b', 's-1', 0)]);
    expect(report.lost).toBe(2);
    expect(report.examples.lost).toEqual([K('a'), K('b')]);
  });

  it('counts events under a key nobody sent as unexpected', () => {
    expect(checkSet([op('http:a', ['ok'])], [ev('http:a', 's-1', 0), ev('http:zz', 's-1', 1)]).unexpected).toBe(1);
  });

  it('counts one key appended twice as duplicated: in two streams, with a gap, more events than answered, or its first type again', () => {
    expect(checkSet([op('http:a', ['ok'])], [ev('http:a', 's-1', 0), ev('http:a', 's-2', 0)]).duplicated).toBe(1);
    expect(checkSet([op('http:a', ['unknown'])], [ev('http:a', 's-1', 0), ev('x', 's-1', 1), ev('http:a', 's-1', 2)]).duplicated).toBe(1);
    expect(checkSet([op('http:a', ['ok'], 1)], [ev('http:a', 's-1', 0, 'A'), ev('http:a', 's-1', 1, 'B')]).duplicated).toBe(1);
    expect(checkSet([op('http:a', ['unknown'])], [ev('http:a', 's-1', 0, 'A'), ev('http:a', 's-1', 1, 'A')]).duplicated).toBe(1);
    expect(checkSet([op('http:a', ['ok'], 2)], [ev('http:a', 's-1', 0, 'A'), ev('http:a', 's-1', 1, 'B')]).duplicated).toBe(0);
  });

  it('takes one request\'s commands in two streams (an atomic append, a key per command type) as one effect, not two', () => {
    // POST /v1/assignments reserves budget on the run and assigns in one transaction, and answers with the assignment's events only.
    const events = [ev('http:a', 'run-1', 4, 'BudgetReserved', 'ReserveBudget'), ev('http:a', 'assignment-1', 0, 'WorkAssigned', 'AssignWork')];
    expect(checkSet([op('http:a', ['ok'], 1)], events)).toMatchObject({ duplicated: 0, lost: 0, unexpected: 0 });
    const twice = [...events, ev('http:a', 'run-1', 6, 'BudgetReserved', 'ReserveBudget')];
    expect(checkSet([op('http:a', ['ok'], 1)], twice).duplicated).toBe(1);
  });

  it('counts a refused command that was stored anyway', () => {
    expect(checkSet([op('http:a', ['fail'])], [ev('http:a', 's-1', 0)]).failedButStored).toBe(1);
  });

  it('finds a gap or a repeat in a stream\'s revisions', () => {
    expect(revisionGaps([ev(null, 's', 0), ev(null, 's', 1), ev(null, 't', 0)])).toEqual([]);
    expect(revisionGaps([ev(null, 's', 0), ev(null, 's', 2)])).toHaveLength(1);
    expect(revisionGaps([ev(null, 's', 0), ev(null, 's', 0)])).toHaveLength(1);
    expect(revisionGaps([ev(null, 's', 1)])).toHaveLength(1);
  });
});
