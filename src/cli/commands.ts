// The CLI's commands (src/cli/main.ts loads this once it has set V8's compilers for the command).
import { CourierError } from '../errors/index.js';
import { version } from '../version.js';
import { watchSupervisor } from './run/supervision.js';

const usage = `Courier ${version}: service invocation for your apps, compatible with Dapr's API.

Usage: courier <command> [flags]

Commands:
  run        run an app with its sidecar (or several apps from a run file with -f)
  sidecar    run a sidecar for an app that is started some other way (daprd's flags)
  list       list the sidecars running on this machine
  resolve    show what the name resolver sees for an app id
  stop       stop a running app and its sidecar
  invoke     call a method of a running app
  stat       each app's success rate, requests per second and latency over a window
  edges      the calls between apps, with their mTLS identities
  top        the busiest routes, redrawn every window
  tap        the calls an app makes and receives, live
  dashboard  serve a live web view of the mesh: call graph, rates, latencies, a tap of calls
  init       set up ~/.courier: a certificate authority and a configuration with mTLS on
  sentry     run the certificate authority (and "sentry token" to make join tokens)
  injector   run the Kubernetes sidecar injector (a mutating admission webhook)
  kubernetes print the manifests to run Courier on Kubernetes ("kubernetes manifests")
  version    print Courier's version

Run "courier <command> --help" for the flags of a command.
`;

type Command = (argv: readonly string[]) => Promise<number>;

async function lazy(module: string, name: string): Promise<Command> {
  const loaded = (await import(module)) as Record<string, Command>;
  const command = loaded[name];
  if (command === undefined) throw new Error(`${module} does not export ${name}`);
  return command;
}

const commands: Readonly<Record<string, () => Promise<Command>>> = {
  // Every command loads only its own modules: `courier run`, which supervises for hours, must not carry
  // the sidecar's (undici, protobufjs, the gRPC and HTTP servers).
  // Interpreted until it serves (main.ts held V8's compilers back; sidecarMain turns them on).
  sidecar: () => lazy('./sidecar-main.js', 'sidecarMain'),
  // Interpreted for good (main.ts turned V8's compilers off): a supervisor runs nothing hot.
  run: () => lazy('./run-command.js', 'runMain'),
  list: () => lazy('./list-command.js', 'listMain'),
  stop: () => lazy('./stop-command.js', 'stopMain'),
  invoke: () => lazy('./invoke-command.js', 'invokeMain'),
  sentry: () => lazy('./sentry-command.js', 'sentryMain'),
  init: () => lazy('./init-command.js', 'initMain'),
  resolve: () => lazy('./resolve-command.js', 'resolveMain'),
  stat: () => lazy('./mesh/stat-command.js', 'statMain'),
  edges: () => lazy('./mesh/edges-command.js', 'edgesMain'),
  top: () => lazy('./mesh/top-command.js', 'topMain'),
  tap: () => lazy('./mesh/tap-command.js', 'tapMain'),
  dashboard: () => lazy('./dashboard/command.js', 'dashboardMain'),
  injector: () => lazy('../kubernetes/injector/command.js', 'injectorMain'),
  kubernetes: () => lazy('../kubernetes/manifests/command.js', 'kubernetesMain'),
};

async function main(argv: readonly string[]): Promise<number> {
  // A sidecar or Sentry started by `courier run` stops (with the app) when that CLI is gone.
  watchSupervisor(process.env);
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage);
    return 0;
  }
  if (name === 'version' || name === '--version' || name === '-v') {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  const load = commands[name];
  if (load === undefined) {
    process.stderr.write(`courier: unknown command "${name}" (see "courier --help")\n`);
    return 1;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Anything left (a stray timer or socket) must not keep a finished command alive.
    setImmediate(() => process.exit(code)).unref();
  },
  (err: unknown) => {
    const error = CourierError.from(err);
    process.stderr.write(`courier: ${error.message}\n`);
    process.exit(1);
  },
);
