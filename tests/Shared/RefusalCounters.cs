using System.Diagnostics.Metrics;

namespace GenService.Testing;

/// <summary>
/// Counts what <c>genservice.cancelled</c> and <c>genservice.rejected</c> (by reason) record on one meter factory, so a
/// test can assert that a disconnect, a deadline or a full queue moved its counter exactly once.
/// </summary>
/// <remarks>Compiled into each test project (linked from tests/Shared), so it stays internal to each.</remarks>
internal sealed class RefusalCounters : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, long> _rejected = [];
    private readonly AwaitableCount _cancelled = new();

    /// <param name="meters">The factory whose "GenService" meter the batchers and loops report on.</param>
    public RefusalCounters(IMeterFactory meters)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name is "genservice.cancelled" or "genservice.rejected")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "genservice.cancelled")
            {
                for (long i = 0; i < value; i++)
                {
                    _cancelled.Increment();
                }

                return;
            }

            string reason = "";
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "reason")
                {
                    reason = (string)tag.Value!;
                }
            }

            lock (_rejected)
            {
                _rejected[reason] = _rejected.GetValueOrDefault(reason) + value;
            }
        });
        _listener.Start();
    }

    public long Cancelled => _cancelled.Value;

    /// <summary>Completes once <paramref name="count"/> cancellations have been counted (a disconnect seen by the server).</summary>
    public Task WhenCancelled(int count) => _cancelled.WhenReached(count);

    /// <summary>Requests rejected for <paramref name="reason"/> (queue_full, deadline, ...).</summary>
    public long Rejected(string reason)
    {
        lock (_rejected)
        {
            return _rejected.GetValueOrDefault(reason);
        }
    }

    public void Dispose() => _listener.Dispose();
}
