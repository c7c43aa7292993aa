import { GrpcChannel, targetLabel, type GrpcChannelOptions } from './channel.js';
import type { ChannelTarget } from './connection.js';

/**
 * One {@link GrpcChannel} per `host:port`, all with the same options: the sidecar's outbound
 * connections. Closing the pool leaves no sockets, timers or listeners behind.
 */
export class ChannelPool {
  readonly #options: GrpcChannelOptions;
  readonly #channels = new Map<string, GrpcChannel>();
  #closed: Promise<void> | undefined;

  constructor(options: GrpcChannelOptions = {}) {
    this.#options = options;
  }

  /**
   * The channel for `target`, created on first use (connections open lazily, on the first call). After
   * `close()` this returns a closed channel whose calls fail `refused`, so callers need no special case.
   */
  get(target: ChannelTarget): GrpcChannel {
    const key = targetLabel(target);
    let channel = this.#channels.get(key);
    if (channel === undefined) {
      channel = new GrpcChannel(target, this.#options);
      if (this.#closed !== undefined) void channel.close();
      else this.#channels.set(key, channel);
    }
    return channel;
  }

  /** Number of channels held. */
  get size(): number {
    return this.#channels.size;
  }

  /**
   * Drops the channel for `target` and destroys its connections now (e.g. the target left the name
   * resolution): its queued calls fail `refused`, its in-flight calls fail `reset`. Resolves once its
   * sockets are closed.
   */
  evict(target: ChannelTarget): Promise<void> {
    const key = targetLabel(target);
    const channel = this.#channels.get(key);
    if (channel === undefined) return Promise.resolve();
    this.#channels.delete(key);
    return channel.close();
  }

  /** Closes every channel (see {@link GrpcChannel.close}). Idempotent. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      const channels = [...this.#channels.values()];
      this.#channels.clear();
      this.#closed = Promise.all(channels.map((channel) => channel.close())).then(() => undefined);
    }
    return this.#closed;
  }
}
