import { test } from 'node:test';
import assert from 'node:assert/strict';

import { SpeedMeter, formatBytes, formatDuration, percentOf } from '../format.js';

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
  assert.equal(formatBytes(150 * 1024 * 1024), '150 MiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
  assert.equal(formatBytes(null), 'unknown size');
});

test('percentOf rounds down and handles empty files', () => {
  assert.equal(percentOf(0, 200), 0);
  assert.equal(percentOf(199, 200), 99);
  assert.equal(percentOf(200, 200), 100);
  assert.equal(percentOf(0, 0), 100);
});

test('formatDuration', () => {
  assert.equal(formatDuration(4.4), '4 s');
  assert.equal(formatDuration(185), '3 min 5 s');
  assert.equal(formatDuration(7800), '2 h 10 min');
  assert.equal(formatDuration(null), '');
});

test('SpeedMeter measures over its window and estimates time left', () => {
  const meter = new SpeedMeter({ windowMs: 5000, minSpanMs: 500 });
  meter.reset(1000, 0); // resumed at 1000 bytes: not counted as speed
  assert.equal(meter.bytesPerSecond, null);
  meter.add(1100, 400);
  assert.equal(meter.bytesPerSecond, null, 'span too short');
  meter.add(3000, 1000);
  assert.equal(meter.bytesPerSecond, 2000);
  assert.equal(meter.secondsLeft(3000, 7000), 2);
  // Old samples fall out of the window: a later slowdown shows.
  meter.add(4000, 7000);
  meter.add(4500, 12000);
  assert.equal(meter.bytesPerSecond, 100);
});

test('parseSize reads quotas as people type them', async () => {
  const { parseSize } = await import('../format.js');
  assert.equal(parseSize(''), null);
  assert.equal(parseSize('  '), null);
  assert.equal(parseSize('0'), 0);
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize('10G'), 10 * 1024 ** 3);
  assert.equal(parseSize('500 MiB'), 500 * 1024 ** 2);
  assert.equal(parseSize('1.5k'), 1536);
  assert.equal(parseSize('2 tb'), 2 * 1024 ** 4);
  for (const bad of ['-1', 'ten', '5 X', '1e9', '99999999999999999999 T']) assert.equal(parseSize(bad), undefined, bad);
});

test('formatUsage and formatDate', async () => {
  const { formatUsage, formatDate } = await import('../format.js');
  assert.equal(formatUsage(1024, 2048), '1.0 KiB of 2.0 KiB');
  assert.equal(formatUsage(0, null), '0 B (no limit)');
  assert.equal(formatUsage(undefined, 0), '0 B (no limit)');
  assert.equal(formatDate(null, 'never'), 'never');
  assert.equal(formatDate('not a date'), 'date unknown');
  assert.notEqual(formatDate('2026-01-01T00:00:00Z'), 'date unknown');
});
