/**
 * How the sidecar talks to its app (`--app-protocol`, Dapr's app connection protocol):
 * - `http`: HTTP/1.1;
 * - `https`: HTTP/1.1 over TLS, the app's certificate not verified (apps use self-signed certificates);
 * - `h2c`: HTTP/2 without TLS, with prior knowledge;
 * - `grpc`: gRPC over HTTP/2 without TLS;
 * - `grpcs`: gRPC over TLS, the app's certificate not verified.
 */
export type AppProtocol = 'http' | 'https' | 'h2c' | 'grpc' | 'grpcs';

export const appProtocols: readonly AppProtocol[] = ['http', 'https', 'h2c', 'grpc', 'grpcs'];

/** The protocol named by a flag or a run file (any case), or undefined when it is not one of them. */
export function parseAppProtocol(value: string): AppProtocol | undefined {
  const lower = value.toLowerCase();
  return (appProtocols as readonly string[]).includes(lower) ? (lower as AppProtocol) : undefined;
}

/**
 * The deprecated `--app-ssl` flag: it turns `http` into `https` and `grpc` into `grpcs` and leaves the
 * others as they are, as daprd and `dapr run` do.
 */
export function withAppSsl(protocol: AppProtocol): AppProtocol {
  if (protocol === 'http') return 'https';
  if (protocol === 'grpc') return 'grpcs';
  return protocol;
}

/** The warning printed when `--app-ssl` is given. */
export const appSslDeprecation = '--app-ssl is deprecated: use --app-protocol https or grpcs instead';

/** gRPC apps (`grpc`, `grpcs`) are called with `AppCallback/OnInvoke`; the others are HTTP apps. */
export function isGrpcProtocol(protocol: AppProtocol): boolean {
  return protocol === 'grpc' || protocol === 'grpcs';
}

/** The protocols whose connections to the app use TLS. */
export function usesTls(protocol: AppProtocol): boolean {
  return protocol === 'https' || protocol === 'grpcs';
}
