import type { OutboundPolicies } from '../invoke/invoker.js';
import { builtInRetryPolicy, isRetryable, type RetryPolicy } from '../invoke/retry.js';
import type { RetryBudgets } from '../invoke/retry-budget.js';
import type { AttemptSender } from '../invoke/retrying-call.js';
import type { InvokeRequest, ResponseSink } from '../invoke/types.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { Resiliency } from './policies.js';
import { PolicyCall } from './policy-call.js';
import type { ResiliencySpec } from './resource.js';

export { loadResiliency, RESILIENCY_KIND, describeRetry, type ResiliencySpec } from './resource.js';
export { Resiliency } from './policies.js';

export interface ResiliencyRunnerOptions {
  readonly namespace: string;
  readonly replayLimitBytes: number;
  readonly budgets: RetryBudgets | undefined;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics | undefined;
}

/** Runs outgoing calls under the Resiliency resources' policies (the invoker's `OutboundPolicies`). */
export class ResiliencyRunner implements OutboundPolicies {
  readonly resiliency: Resiliency;
  readonly builtIn: RetryPolicy | undefined;
  readonly #options: ResiliencyRunnerOptions;

  constructor(spec: ResiliencySpec, options: ResiliencyRunnerOptions) {
    this.resiliency = new Resiliency(spec, options.namespace, options.metrics, options.logger);
    this.#options = options;
    const tuned = spec.builtIn;
    // A tuned built-in policy keeps the built-in rules of what is retried; only its count and spacing change.
    this.builtIn =
      tuned === undefined
        ? undefined
        : { maxRetries: tuned.maxRetries < 0 ? Number.MAX_SAFE_INTEGER : tuned.maxRetries, backoffMs: tuned.durationMs, retryable: isRetryable };
  }

  run<Target>(targetId: string, request: InvokeRequest<Target>, sink: ResponseSink, sender: AttemptSender<Target>, deadline: number | undefined): boolean {
    const policy = this.resiliency.forCall(targetId, request.method);
    if (policy === undefined) return false;
    const options = this.#options;
    new PolicyCall(request, sink, sender, {
      policy,
      builtIn: this.builtIn ?? builtInRetryPolicy,
      budget: options.budgets?.for(targetId),
      replayLimitBytes: options.replayLimitBytes,
      logger: options.logger,
      metrics: options.metrics,
      deadline,
    }).start();
    return true;
  }
}
