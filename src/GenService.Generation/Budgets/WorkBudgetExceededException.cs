using GenService.Inference;

namespace GenService.Generation.Budgets;

/// <summary>The caller already has as much work in flight as it may: 429 with Retry-After, until some of it ends.</summary>
public sealed class WorkBudgetExceededException(string caller, long inFlight, long asked, long budget, TimeSpan retryAfter)
    : TooManyRequestsException(
        $"Caller '{caller}' has {inFlight} units of work in flight and asked for {asked} more; the budget per caller is {budget} "
        + $"(GenService:Limits:MaxCallerWork). Retry after {Math.Ceiling(retryAfter.TotalSeconds)} s, when a request of yours has finished.",
        retryAfter);
