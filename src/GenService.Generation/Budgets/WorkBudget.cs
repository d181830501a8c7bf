using System.Globalization;
using GenService.Inference;
using GenService.Inference.Callers;
using GenService.Inference.Metrics;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Budgets;

/// <summary>
/// The work budgets of <see cref="WorkBudgetOptions"/>, one service for every family:
/// <list type="bullet">
/// <item><see cref="Check"/>: a request over <see cref="WorkBudgetOptions.MaxRequestWork"/> is a 400 that names the
/// product, the budget and what to lower, before any work is done;</item>
/// <item><see cref="Admit"/>: the caller (<see cref="CallerContext.Current"/>) holds the request's work until the
/// returned lease is disposed; past <see cref="WorkBudgetOptions.MaxCallerWork"/> it is a 429 with Retry-After,
/// counted as <c>genservice_rejected_total{reason="work_budget"}</c>. A caller with nothing in flight is always
/// admitted (its request already passed <see cref="Check"/>).</item>
/// </list>
/// </summary>
public sealed class WorkBudget(IOptions<WorkBudgetOptions> options, GenServiceMetrics? metrics = null)
{
    private readonly WorkBudgetOptions _options = options.Value;
    private readonly Dictionary<string, long> _inFlight = new(StringComparer.Ordinal);

    /// <summary>Work in flight for <paramref name="caller"/> (tests, diagnostics).</summary>
    public long InFlight(string caller)
    {
        lock (_inFlight)
        {
            return _inFlight.GetValueOrDefault(caller);
        }
    }

    /// <summary>Refuses a request larger than the per-request budget (400).</summary>
    public void Check(WorkRequest work)
    {
        long budget = _options.MaxRequestWork;
        if (budget > 0 && work.Units > budget)
        {
            throw new RequestValidationException(work.Field, string.Create(CultureInfo.InvariantCulture,
                $"The request asks for {work.Product} = {work.Units} units of work; the budget per request is {budget} (GenService:Limits:MaxRequestWork). Lower {work.Lower}."));
        }
    }

    /// <summary>Checks the request, then holds its work for the current caller until the lease is disposed.</summary>
    public Lease Admit(WorkRequest work)
    {
        Check(work);
        long budget = _options.MaxCallerWork;
        string caller = CallerContext.Current;
        if (budget <= 0)
        {
            return new Lease(null, caller, 0);
        }

        lock (_inFlight)
        {
            long held = _inFlight.GetValueOrDefault(caller);
            if (held > 0 && held + work.Units > budget)
            {
                metrics?.RecordRejected(work.Model, "", "work_budget");
                throw new WorkBudgetExceededException(caller, held, work.Units, budget, TimeSpan.FromSeconds(_options.RetryAfterSeconds));
            }

            _inFlight[caller] = held + work.Units;
        }

        return new Lease(this, caller, work.Units);
    }

    private void Release(string caller, long units)
    {
        lock (_inFlight)
        {
            long left = _inFlight.GetValueOrDefault(caller) - units;
            if (left > 0)
            {
                _inFlight[caller] = left;
            }
            else
            {
                _inFlight.Remove(caller);
            }
        }
    }

    /// <summary>A caller's hold on its request's work; disposing it (once) gives the work back.</summary>
    public sealed class Lease : IDisposable
    {
        private WorkBudget? _owner;
        private readonly string _caller;
        private readonly long _units;

        internal Lease(WorkBudget? owner, string caller, long units)
        {
            _owner = owner;
            _caller = caller;
            _units = units;
        }

        public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release(_caller, _units);
    }
}
