import { AsyncResource } from 'node:async_hooks';

/**
 * Node's `AsyncResource#bind`, which `node:http2` calls on every `ClientHttp2Session#request` (each
 * request binds its start to the caller's async context), also defines a deprecated `asyncResource`
 * getter and setter (DEP0172) on every function it returns, each made by `util.deprecate`. In a sidecar
 * calling a gRPC or h2c app, that was the costliest single function of the callee's profile
 * (`deprecate`, 5.3 % of busy time, plus `bind` 1.7 %) and a sixth of what the callee allocated per
 * call, all of it garbage at once.
 *
 * `installLeanAsyncBind()` gives the sidecar process a `bind` that does what Node's does (runs the
 * function in the resource's async scope, with the bound `this` or the caller's, and its arguments)
 * without the deprecated accessors, which nothing in a sidecar reads. Bound functions report a
 * `length` of 0. It changes nothing on a Node whose `bind` no longer defines them, and it is installed
 * by `courier sidecar` only: the apps and `courier run` keep Node's own.
 */

type Callable = (this: unknown, ...args: unknown[]) => unknown;

let installed = false;

/** `fn` run in `resource`'s scope, with `thisArg` as `this` or, without one, the caller's. */
function boundTo(resource: AsyncResource, fn: Callable, thisArg: unknown): Callable {
  if (thisArg === undefined) {
    return function bound(this: unknown, ...args: unknown[]): unknown {
      return resource.runInAsyncScope(fn, this, ...args);
    };
  }
  return (...args: unknown[]): unknown => resource.runInAsyncScope(fn, thisArg, ...args);
}

/** Replaces `AsyncResource.prototype.bind` as described above; returns whether the lean one is in place. */
export function installLeanAsyncBind(): boolean {
  if (installed) return true;
  const proto = AsyncResource.prototype;
  // Node's bind(fn, thisArg), only ever called with its resource; the type declarations know only bind(fn).
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = proto.bind as unknown as (this: AsyncResource, fn: unknown, thisArg?: unknown) => Callable;
  const probe = new AsyncResource('CourierBindProbe').bind(() => undefined);
  if (Object.getOwnPropertyDescriptor(probe, 'asyncResource')?.get === undefined) return false;
  function bind(this: AsyncResource, fn: Callable, thisArg?: unknown): Callable {
    // Node's own argument checks and errors for anything that is not a function.
    if (typeof fn !== 'function') return original.call(this, fn, thisArg);
    return boundTo(this, fn, thisArg);
  }
  proto.bind = bind as typeof proto.bind;
  installed = true;
  return true;
}
