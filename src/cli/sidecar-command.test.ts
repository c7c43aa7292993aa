import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import { parseSidecarArgs, type SidecarCommandResult } from './sidecar-command.js';

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
