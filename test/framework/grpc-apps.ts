// gRPC peers for integration tests, built with @grpc/grpc-js (an independent implementation):
// a Dapr gRPC app (AppCallback/OnInvoke + AppCallbackHealthCheck), a user service `courier.test.Echo`
// with all four call kinds over raw bytes, and clients for Dapr's API and for Echo.
import * as grpc from '@grpc/grpc-js';
import {
  getMetadataResponseCodec,
  invokeRequestCodec,
  invokeResponseCodec,
  invokeServiceRequestCodec,
  type Codec,
  type GetMetadataResponse,
  type InvokeRequest,
  type InvokeResponse,
  type InvokeServiceRequest,
} from '../../src/proto/index.js';

function unaryDef<Req, Res>(path: string, req: Codec<Req>, res: Codec<Res>): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Req) => Buffer.from(req.encode(v)),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (v: Res) => Buffer.from(res.encode(v)),
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

const bytes: Codec<Buffer> = { encode: (v) => v, decode: (b) => Buffer.from(b) };
const empty: Codec<Record<string, never>> = { encode: () => new Uint8Array(0), decode: () => ({}) };

export const appCallbackService: grpc.ServiceDefinition = {
  OnInvoke: unaryDef('/dapr.proto.runtime.v1.AppCallback/OnInvoke', invokeRequestCodec, invokeResponseCodec),
};
export const healthCheckService: grpc.ServiceDefinition = {
  HealthCheck: unaryDef('/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck', empty, empty),
};
export const daprService: grpc.ServiceDefinition = {
  InvokeService: unaryDef('/dapr.proto.runtime.v1.Dapr/InvokeService', invokeServiceRequestCodec, invokeResponseCodec),
  GetMetadata: unaryDef('/dapr.proto.runtime.v1.Dapr/GetMetadata', empty, getMetadataResponseCodec),
  GetState: unaryDef('/dapr.proto.runtime.v1.Dapr/GetState', bytes, bytes),
};

function echoDef(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/courier.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: (v: Buffer) => v,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (v: Buffer) => v,
    responseDeserialize: (b: Buffer) => b,
  };
}
export const echoService: grpc.ServiceDefinition = {
  Unary: echoDef('Unary', false, false),
  ServerStream: echoDef('ServerStream', false, true),
  ClientStream: echoDef('ClientStream', true, false),
  Bidi: echoDef('Bidi', true, true),
};

/** What a test app saw: one entry per call, with its metadata. */
export interface SeenCall {
  readonly method: string;
  readonly metadata: Record<string, grpc.MetadataValue[]>;
  readonly request?: InvokeRequest;
}

export function metadataObject(md: grpc.Metadata): Record<string, grpc.MetadataValue[]> {
  const out: Record<string, grpc.MetadataValue[]> = {};
  for (const key of Object.keys(md.getMap())) out[key] = md.get(key);
  return out;
}

export type OnInvoke = (request: InvokeRequest, call: grpc.ServerUnaryCall<InvokeRequest, InvokeResponse>, callback: grpc.sendUnaryData<InvokeResponse>) => void;

export interface EchoHandlers {
  Unary?: grpc.handleUnaryCall<Buffer, Buffer>;
  ServerStream?: grpc.handleServerStreamingCall<Buffer, Buffer>;
  ClientStream?: grpc.handleClientStreamingCall<Buffer, Buffer>;
  Bidi?: grpc.handleBidiStreamingCall<Buffer, Buffer>;
}

/** A gRPC app on 127.0.0.1: Dapr's AppCallback (with `onInvoke`) and health check, and the Echo service. */
export class GrpcTestApp {
  readonly server: grpc.Server;
  readonly seen: SeenCall[] = [];
  port = 0;
  onInvoke: OnInvoke = (_req, _call, callback) => callback(null, { contentType: 'text/plain', data: { value: Buffer.from('ok') } });
  healthy = true;
  echo: EchoHandlers = {};
  /** Calls whose client went away (grpc-js 'cancelled'), by method name. */
  readonly cancelled: string[] = [];

  constructor(options: grpc.ServerOptions = {}) {
    this.server = new grpc.Server(options);
    this.server.addService(appCallbackService, {
      OnInvoke: (call: grpc.ServerUnaryCall<InvokeRequest, InvokeResponse>, callback: grpc.sendUnaryData<InvokeResponse>) => {
        this.seen.push({ method: 'OnInvoke', metadata: metadataObject(call.metadata), request: call.request });
        call.on('cancelled', () => this.cancelled.push('OnInvoke'));
        this.onInvoke(call.request, call, callback);
      },
    });
    this.server.addService(healthCheckService, {
      HealthCheck: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<Record<string, never>>) =>
        this.healthy ? callback(null, {}) : callback({ code: grpc.status.UNAVAILABLE, details: 'not healthy' }),
    });
    const track = (name: string, call: { metadata: grpc.Metadata; on(event: 'cancelled', fn: () => void): unknown }): void => {
      this.seen.push({ method: name, metadata: metadataObject(call.metadata) });
      call.on('cancelled', () => this.cancelled.push(name));
    };
    this.server.addService(echoService, {
      Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        track('Unary', call);
        if (this.echo.Unary) this.echo.Unary(call, cb);
        else cb(null, call.request);
      },
      ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        track('ServerStream', call);
        if (this.echo.ServerStream) this.echo.ServerStream(call);
        else {
          call.write(call.request);
          call.end();
        }
      },
      ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        track('ClientStream', call);
        if (this.echo.ClientStream) {
          this.echo.ClientStream(call, cb);
          return;
        }
        const parts: Buffer[] = [];
        call.on('data', (b: Buffer) => parts.push(b));
        call.on('end', () => cb(null, Buffer.concat(parts)));
      },
      Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        track('Bidi', call);
        if (this.echo.Bidi) {
          this.echo.Bidi(call);
          return;
        }
        call.on('data', (b: Buffer) => call.write(b));
        call.on('end', () => call.end());
      },
    });
  }

  /** Listens on 127.0.0.1 (port 0: a free one), in plain text, or over TLS with `createSsl` credentials. */
  async listen(port = 0, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<this> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
    );
    return this;
  }

  close(): Promise<void> {
    this.server.forceShutdown();
    return Promise.resolve();
  }
}

export async function startGrpcApp(
  env: { track<T extends { close(): Promise<void> }>(x: T): T },
  options: grpc.ServerOptions = {},
  port = 0,
  credentials?: grpc.ServerCredentials,
): Promise<GrpcTestApp> {
  return env.track(await new GrpcTestApp(options).listen(port, credentials));
}

/** A grpc-js client of Dapr's API (`InvokeService`, `GetMetadata`, and `GetState` to see it refused). */
export interface DaprGrpcClient extends grpc.Client {
  InvokeService(req: InvokeServiceRequest, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: InvokeResponse) => void): grpc.ClientUnaryCall;
  GetMetadata(req: Record<string, never>, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: GetMetadataResponse) => void): grpc.ClientUnaryCall;
  GetState(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
}

export interface EchoClient extends grpc.Client {
  Unary(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  ServerStream(req: Buffer, md: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
  ClientStream(md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientWritableStream<Buffer>;
  Bidi(md: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
}

const DaprClientCtor = grpc.makeGenericClientConstructor(daprService, 'Dapr');
export const EchoClientCtor = grpc.makeGenericClientConstructor(echoService, 'Echo');

/** A client of the gRPC API on a loopback port, or on any grpc-js target (e.g. `unix:///path`). */
export function daprClient(target: number | string, options: grpc.ClientOptions = {}): DaprGrpcClient {
  return new DaprClientCtor(typeof target === 'number' ? `127.0.0.1:${target}` : target, grpc.credentials.createInsecure(), options) as unknown as DaprGrpcClient;
}

export function echoClient(port: number, options: grpc.ClientOptions = {}): EchoClient {
  return new EchoClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
}

/** Metadata from a plain object (repeated values as arrays). */
export function md(values: Record<string, string | string[]>): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const [key, value] of Object.entries(values)) for (const v of Array.isArray(value) ? value : [value]) out.add(key, v);
  return out;
}

/** InvokeService as a promise; also returns the header metadata and trailers. */
export function invokeService(
  client: DaprGrpcClient,
  req: InvokeServiceRequest,
  metadata: grpc.Metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<{ err: grpc.ServiceError | null; res: InvokeResponse | undefined; headers: grpc.Metadata | undefined; trailers: grpc.Metadata | undefined }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    let result: { err: grpc.ServiceError | null; res: InvokeResponse | undefined } | undefined;
    let statusSeen = false;
    const finish = (): void => {
      if (result !== undefined && statusSeen) resolve({ ...result, headers, trailers });
    };
    const call = client.InvokeService(req, metadata, options, (err, res) => {
      result = { err, res };
      finish();
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
      statusSeen = true;
      finish();
    });
  });
}

export function echoUnary(client: EchoClient, req: Buffer, metadata: grpc.Metadata, options: grpc.CallOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => client.Unary(req, metadata, options, (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0)))));
}

/** Waits until `check` is true, polling every 20 ms, failing after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
