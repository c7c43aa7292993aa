// Where the dashboard's data comes from: the mesh readers of src/cli/mesh/ (discovery, sampling, the
// window view and the tap client), behind one small interface, so that the server can be tested
// with a made-up mesh.
import { discoverMesh, discoverSidecars, meshView, noSidecarsMessage, sampleMesh, type DiscoverMeshOptions, type MeshDiscovery, type SampleOptions } from '../mesh/collect.js';
import { tapMesh, type TapOptions } from '../mesh/tap-client.js';
import type { MeshSample, MeshView, SidecarRef, TappedCall } from '../mesh/view-types.js';

/** What a page may narrow the tap to; each optional, combined with AND. */
export interface TapFilters {
  /** An app id: calls from or to it. */
  readonly app?: string;
  /** A prefix of the called path, e.g. `/orders`. */
  readonly path?: string;
  /** An exact status (`503`) or a class (`5xx`). */
  readonly status?: string;
}

/** Reaches the sidecars: the API token (`DAPR_API_TOKEN`, sent to sidecars, never to a page) and the read timeout. */
export type MeshSourceOptions = SampleOptions;

/** As MeshSourceOptions, plus what the dashboard hears of each sidecar's stream (failures, dropped events). */
export type TapSourceOptions = TapOptions;

/** An open tap on some sidecars. */
export interface TapHandle {
  /** Ends its upstream connections. */
  close(): Promise<void>;
  /** Resolves once every stream has ended, for any reason. */
  readonly ended?: Promise<void>;
}

export interface MeshSource {
  /** The sidecars to read now: run records in COURIER_HOME plus the `--sidecar` addresses. */
  discoverSidecars(env: NodeJS.ProcessEnv, addresses: readonly string[]): readonly SidecarRef[] | Promise<readonly SidecarRef[]>;
  /**
   * The same, plus the sidecars name resolution lists for the apps in view (`options.names`, the
   * dashboard's one resolver); used instead of discoverSidecars when the dashboard has name resolution.
   */
  discoverMesh?(env: NodeJS.ProcessEnv, options: DiscoverMeshOptions): Promise<MeshDiscovery>;
  /** One read of every sidecar's info and traffic counters; a sidecar that cannot be read is in it with its error. */
  sampleMesh(refs: readonly SidecarRef[], options: MeshSourceOptions): Promise<MeshSample>;
  /** Rates, success and latencies over the window between two samples. */
  meshView(before: MeshSample, after: MeshSample): MeshView;
  /** Streams the calls the sidecars see, as they end. */
  tapMesh(refs: readonly SidecarRef[], filters: TapFilters, options: TapSourceOptions, onEvent: (call: TappedCall) => void): TapHandle;
  /** Why discovery found no sidecar, naming where it looked (and what name resolution was asked). */
  noSidecarsMessage?(env: NodeJS.ProcessEnv, resolved?: MeshDiscovery['resolved']): string;
}

/** The real readers: src/cli/mesh/collect.ts and tap-client.ts. */
export const meshSource: MeshSource = { discoverSidecars, discoverMesh, sampleMesh, meshView, tapMesh, noSidecarsMessage };
