import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import { parseSidecarArgs, sidecarUsage, type SidecarCommandResult } from './sidecar-command.js';

function parsed(argv: string[]): SidecarCommandResult {
  const result = parseSidecarArgs(['--app-id', 'shop', '--app-port', '3000', ...argv], {});
  assert.notEqual(result, 'help');
  return result as SidecarCommandResult;
}

function refused(argv: string[]): string {
  try {
    parseSidecarArgs(['--app-id', 'shop', ...argv], {});
  } catch (err) {
    assert.ok(err instanceof CourierError, String(err));
    assert.equal(err.code, 'ERR_INVALID_FLAG');
    return err.message;
  }
  assert.fail(`expected ${argv.join(' ')} to be refused`);
}

test('--app-protocol: http (the default), https, h2c, grpc and grpcs, in any case', () => {
  assert.equal(parsed([]).options.appProtocol, 'http');
  for (const protocol of ['http', 'https', 'h2c', 'grpc', 'grpcs'] as const) {
    assert.equal(parsed(['--app-protocol', protocol]).options.appProtocol, protocol);
    assert.equal(parsed([`--app-protocol=${protocol.toUpperCase()}`]).options.appProtocol, protocol);
  }
  assert.equal(
    refused(['--app-protocol', 'http3']),
    'courier sidecar: --app-protocol http3 is not supported (supported: http, https, h2c, grpc, grpcs) (see "courier sidecar --help")',
  );
});

test('--app-ssl (deprecated) turns http into https and grpc into grpcs, and says it is deprecated', () => {
  const deprecation = '--app-ssl is deprecated: use --app-protocol https or grpcs instead';
  const cases: Array<[string[], string]> = [
    [['--app-ssl'], 'https'],
    [['--app-protocol', 'http', '--app-ssl'], 'https'],
    [['--app-ssl', '--app-protocol', 'grpc'], 'grpcs'],
    [['--app-protocol', 'h2c', '--app-ssl'], 'h2c'],
    [['--app-protocol', 'grpcs', '--app-ssl'], 'grpcs'],
    [['--app-protocol', 'grpc', '--app-ssl=false'], 'grpc'],
  ];
  for (const [flags, protocol] of cases) {
    const { options, warnings } = parsed(flags);
    assert.equal(options.appProtocol, protocol, flags.join(' '));
    assert.deepEqual(warnings, [deprecation], flags.join(' '));
  }
  assert.deepEqual(parsed(['--app-protocol', 'https']).warnings, []);
});

test('--load-balancing: p2c (the default) or round-robin; --outlier-ejection: failures in a row, 0 for none (default 5)', () => {
  assert.equal(parsed([]).options.loadBalancing, 'p2c');
  assert.equal(parsed(['--load-balancing', 'round-robin']).options.loadBalancing, 'round-robin');
  assert.equal(parsed(['--load-balancing=P2C']).options.loadBalancing, 'p2c');
  assert.equal(
    refused(['--load-balancing', 'least-request']),
    'courier sidecar: --load-balancing least-request is not supported (supported: p2c, round-robin) (see "courier sidecar --help")',
  );
  assert.equal(parsed([]).options.outlierEjection, 5);
  assert.equal(parsed(['--outlier-ejection', '0']).options.outlierEjection, 0);
  assert.equal(parsed(['--outlier-ejection=3']).options.outlierEjection, 3);
  assert.equal(
    refused(['--outlier-ejection', '-1']),
    'courier sidecar: --outlier-ejection must be 0 (no ejection) or a number of failures in a row (see "courier sidecar --help")',
  );
  assert.match(refused(['--outlier-ejection', 'often']), /--outlier-ejection: "often" is not a whole number/);
  assert.match(refused(['--load-balancing']), /--load-balancing needs a value/);
});

test('the usage text lists the load-balancing flags with their defaults', () => {
  assert.match(sidecarUsage, /--load-balancing <policy> +.*p2c.*round-robin.*\(default p2c\)/);
  assert.match(sidecarUsage, /--outlier-ejection <n> +.*\(0: never\) \(default 5\)/);
});

test('--retry-budget: a ratio of recent calls (default 0.2) or off; --retry-budget-min: retries per second (default 10)', () => {
  assert.deepEqual(parsed([]).options.retryBudget, { ratio: 0.2, minPerSecond: 10 });
  assert.deepEqual(parsed(['--retry-budget', '0.5', '--retry-budget-min', '2']).options.retryBudget, { ratio: 0.5, minPerSecond: 2 });
  assert.equal(parsed(['--retry-budget', 'off']).options.retryBudget, undefined);
  assert.match(refused(['--retry-budget', '-1']), /--retry-budget: "-1" is not a ratio such as 0\.2 \(or off\)/);
  assert.match(refused(['--retry-budget', 'lots']), /--retry-budget: "lots" is not a ratio/);
  assert.match(refused(['--retry-budget-min', 'x']), /--retry-budget-min: "x" is not a number of retries per second/);
  assert.match(sidecarUsage, /--retry-budget <ratio> +.*\(default 0\.2\)/);
});

test('--mode: standalone (the default) or kubernetes, as daprd', () => {
  assert.equal(parsed([]).options.mode, 'standalone');
  assert.equal(parsed(['--mode', 'kubernetes']).options.mode, 'kubernetes');
  assert.equal(parsed(['--mode', 'Kubernetes']).options.mode, 'kubernetes');
  assert.match(refused(['--mode', 'cluster']), /--mode cluster is not supported \(supported: standalone, kubernetes\)/);
});

test('--dapr-block-shutdown-duration: a duration (bare numbers are seconds); unset blocks nothing', () => {
  assert.equal(parsed([]).options.blockShutdownMs, undefined);
  assert.equal(parsed(['--dapr-block-shutdown-duration', '1m30s']).options.blockShutdownMs, 90_000);
  assert.equal(parsed(['--dapr-block-shutdown-duration', '5']).options.blockShutdownMs, 5000);
  assert.match(refused(['--dapr-block-shutdown-duration', 'soon']), /is not a duration such as 30s/);
  assert.match(refused(['--dapr-block-shutdown-duration=-5s']), /is negative/);
});
