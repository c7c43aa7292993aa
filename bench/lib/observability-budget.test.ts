import assert from 'node:assert/strict';
import { test } from 'node:test';
import { overBase, type BudgetFigures } from './observability-budget.js';

function figures(variant: string, cpu: { a: number[]; b: number[] }, ratios: { a: number[]; b: number[] }, rssMb: { a: number; b: number }[]): BudgetFigures {
  return { variant, pairs: rssMb.length, a: cpu.a, b: cpu.b, ratioA: ratios.a, ratioB: ratios.b, pairMedians: [], p50: [], p99: [], rssMb };
}

test("a variant's cost is the median of its same-window ratios, not the ratio of the medians", () => {
  // Windows of very different speed: the base's CPU wanders by 50 %, the ratio in each window does not.
  const lean = figures('lean', { a: [0.1, 0.15, 0.1, 0.15, 0.12], b: [0.1, 0.1, 0.1, 0.1, 0.1] }, { a: [], b: [] }, [{ a: 70, b: 71 }]);
  const variant = figures(
    'default',
    { a: [0.2, 0.2, 0.2, 0.2, 0.2], b: [0.1, 0.1, 0.1, 0.1, 0.1] },
    { a: [1.05, 1.2, 1.06, 1.04, 1.07], b: [0.95, 1.03, 1.02, 0.99, 1.01] },
    [{ a: 72, b: 73 }],
  );
  const o = overBase(variant, lean);
  assert.ok(Math.abs(o.a - 6) < 1e-9, `caller ${o.a}`);
  assert.ok(Math.abs(o.b - 1) < 1e-9, `callee ${o.b}`);
  assert.equal(o.worst, o.a);
  assert.equal(o.rssMb, 2);
});

test('the worse of the two sidecars decides, and RSS compares the median pair', () => {
  const lean = figures('lean', { a: [], b: [] }, { a: [], b: [] }, [{ a: 70, b: 70 }, { a: 71, b: 70 }, { a: 90, b: 70 }]);
  const traced = figures('traced', { a: [], b: [] }, { a: [1.1, 1.3, 1.2], b: [1.25, 1.4, 1.35] }, [{ a: 78, b: 79 }, { a: 78, b: 78 }, { a: 60, b: 60 }]);
  const o = overBase(traced, lean);
  assert.ok(Math.abs(o.a - 20) < 1e-9);
  assert.ok(Math.abs(o.b - 35) < 1e-9);
  assert.equal(o.worst, o.b);
  // Pairs' peaks: traced 79, 78, 60 → 78; lean 70, 71, 90 → 71.
  assert.equal(o.rssMb, 7);
});
