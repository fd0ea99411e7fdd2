import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../../core/errors.ts';
import { checkTrainingNice, cpuShareFromEnv, describePriority, idleTrainingThread, lowerTrainingPriority, trainBehindServer, trainingIdleFromEnv, trainingNiceFromEnv } from '../../server/training-priority.ts';

/**
 * Issue 17 item 6: the thread that trains yields to the server thread when the cores are
 * short. What it does to a thread runs in a child process: a lowered priority cannot be
 * raised again, and this test's worker must keep its own.
 */
describe('lowering the training thread priority', () => {
  it.runIf(process.platform === 'linux')('lowers the calling thread only, and only downwards', () => {
    const script = `
      import { Worker } from 'node:worker_threads';
      import { getPriority } from 'node:os';
      import { lowerTrainingPriority } from './server/training-priority.ts';
      // a thread started before, like the server thread, keeps its priority
      const other = new Worker('Promise.all([import("node:worker_threads"), import("node:os")]).then(([{ parentPort }, { getPriority }]) => parentPort.on("message", () => parentPort.postMessage(getPriority())));', { eval: true });
      const first = lowerTrainingPriority(10);
      const again = lowerTrainingPriority(5);
      other.postMessage('?');
      other.once('message', (otherNice) => {
        console.log(JSON.stringify({ first, again, main: getPriority(), other: otherNice }));
        other.terminate();
      });`;
    const out = execFileSync(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8', env: { ...process.env, STREAMGRAD_TRAINING_NICE: '' } });
    const got = JSON.parse(out.trim().split('\n').pop()!) as { first: { nice: number; changed: boolean }; again: { nice: number; changed: boolean; reason: string }; main: number; other: number };
    expect(got.first).toEqual({ nice: 10, changed: true });
    expect(got.again).toMatchObject({ nice: 10, changed: false, reason: 'already at nice 10' });
    expect(got.main).toBe(10);
    expect(got.other).toBe(0);
  });

  it.runIf(process.platform === 'linux')('puts the calling thread under SCHED_IDLE after its nice value, and no other thread', () => {
    const script = `
      import { Worker } from 'node:worker_threads';
      import { readFileSync, readdirSync } from 'node:fs';
      import { trainBehindServer, threadPolicy } from './server/training-priority.ts';
      // the policy of every thread of this process, read from outside each thread
      const policies = () => Object.fromEntries(readdirSync('/proc/self/task').map((tid) => [tid, Number(readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').replace(/^.*\\) /s, '').split(' ')[38])]));
      const other = new Worker('setInterval(() => {}, 1000)', { eval: true });
      other.once('online', () => {
        const first = trainBehindServer(10, true);
        const again = trainBehindServer(10, true);
        console.log(JSON.stringify({ first, again, own: threadPolicy(), all: policies(), pid: process.pid }));
        other.terminate();
      });`;
    const out = execFileSync(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8', env: { ...process.env, STREAMGRAD_TRAINING_NICE: '' } });
    const got = JSON.parse(out.trim().split('\n').pop()!) as { first: object; again: object; own: number; all: Record<string, number>; pid: number };
    expect(got.first).toEqual({ nice: 10, changed: true, idle: true });
    expect(got.again).toEqual({ nice: 10, changed: false, reason: 'already at nice 10', idle: true });
    expect(got.own).toBe(5); // SCHED_IDLE
    // the main thread is the one that called; every other thread (the worker, V8's, libuv's) keeps the normal policy
    const { [String(got.pid)]: main, ...others } = got.all;
    expect(main).toBe(5);
    expect(Object.keys(others).length).toBeGreaterThan(1);
    expect(Object.values(others).every((policy) => policy === 0)).toBe(true);
  });

  it('says why a thread is not put under SCHED_IDLE, and nice 0 leaves the thread alone altogether', () => {
    expect(idleTrainingThread('darwin')).toEqual({ idle: false, changed: false, reason: "SCHED_IDLE is Linux's (here darwin)" });
    expect(trainBehindServer(0, true)).toBeNull();
    expect(describePriority(null)).toMatch(/left at its priority/);
    expect(describePriority({ nice: 10, changed: true, idle: true })).toBe('at nice 10, SCHED_IDLE (STREAMGRAD_TRAINING_NICE, STREAMGRAD_TRAINING_IDLE)');
    expect(describePriority({ nice: 10, changed: true, idle: false, idleReason: 'chrt (util-linux) is not installed' })).toMatch(/not SCHED_IDLE \(chrt \(util-linux\) is not installed\)/);
  });

  it('leaves the priority alone where it applies to the whole process', () => {
    expect(lowerTrainingPriority(10, 'darwin')).toMatchObject({ changed: false, reason: expect.stringMatching(/per process/) });
  });

  it('takes nice values from 0 to 19, and the environment variable over the default', () => {
    expect(checkTrainingNice(0)).toBe(0);
    expect(checkTrainingNice(19)).toBe(19);
    for (const bad of [-1, 20, 2.5, Number.NaN]) expect(() => checkTrainingNice(bad)).toThrow(StreamgradError);
    expect(trainingNiceFromEnv(10, {})).toBe(10);
    expect(trainingNiceFromEnv(10, { STREAMGRAD_TRAINING_NICE: '' })).toBe(10);
    expect(trainingNiceFromEnv(10, { STREAMGRAD_TRAINING_NICE: '0' })).toBe(0);
    expect(trainingNiceFromEnv(10, { STREAMGRAD_TRAINING_NICE: '19' })).toBe(19);
    for (const bad of ['20', '-1', 'low', '1e1', '5 ']) {
      expect(() => trainingNiceFromEnv(10, { STREAMGRAD_TRAINING_NICE: bad })).toThrow(/STREAMGRAD_TRAINING_NICE must be an integer from 0 to 19/);
    }
  });

  it('STREAMGRAD_CPU_SHARE: 1 or unset shares the CPU with the server thread, 0 does not, anything else is refused by name', () => {
    expect(cpuShareFromEnv({})).toBe(true);
    expect(cpuShareFromEnv({ STREAMGRAD_CPU_SHARE: '' })).toBe(true);
    expect(cpuShareFromEnv({ STREAMGRAD_CPU_SHARE: '1' })).toBe(true);
    expect(cpuShareFromEnv({ STREAMGRAD_CPU_SHARE: '0' })).toBe(false);
    for (const bad of ['yes', 'false', '2', ' 0']) expect(() => cpuShareFromEnv({ STREAMGRAD_CPU_SHARE: bad })).toThrow(/STREAMGRAD_CPU_SHARE must be 0 or 1/);
  });

  it('STREAMGRAD_TRAINING_IDLE: 1 puts the training thread under SCHED_IDLE, 0 or unset does not, anything else is refused by name', () => {
    expect(trainingIdleFromEnv({})).toBe(false);
    expect(trainingIdleFromEnv({ STREAMGRAD_TRAINING_IDLE: '' })).toBe(false);
    expect(trainingIdleFromEnv({ STREAMGRAD_TRAINING_IDLE: '1' })).toBe(true);
    expect(trainingIdleFromEnv({ STREAMGRAD_TRAINING_IDLE: '0' })).toBe(false);
    for (const bad of ['idle', 'true', '2']) {
      const error = (() => { try { trainingIdleFromEnv({ STREAMGRAD_TRAINING_IDLE: bad }); } catch (e) { return e; } })();
      expect(error).toBeInstanceOf(StreamgradError);
      expect(error).toMatchObject({ field: 'STREAMGRAD_TRAINING_IDLE', message: expect.stringMatching(/STREAMGRAD_TRAINING_IDLE must be 0 or 1/) });
    }
  });
});
