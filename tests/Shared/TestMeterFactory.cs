using System.Diagnostics.Metrics;

namespace GenService.Testing;

/// <summary>
/// A meter factory of the test's own, so a MeterListener can tell this test's instruments (their scope) from those of
/// tests running beside it.
/// </summary>
/// <remarks>Compiled into each test project (linked from tests/Shared), so it stays internal to each.</remarks>
internal sealed class TestMeterFactory : IMeterFactory
{
    private readonly List<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options.Name, options.Version, options.Tags, scope: this);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose() => _meters.ForEach(m => m.Dispose());
}
