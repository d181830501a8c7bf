using GenService.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;
using Serilog.Events;

namespace GenService.Api.Tests.Hardening;

/// <summary>Every log event the host wrote, captured through Serilog's DI sinks (ReadFrom.Services).</summary>
internal sealed class CapturingSink : ILogEventSink
{
    private readonly List<LogEvent> _events = [];

    public IReadOnlyList<LogEvent> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    public void Emit(LogEvent logEvent)
    {
        lock (_events)
        {
            _events.Add(logEvent);
        }
    }
}

/// <summary>The fake-model host (<see cref="FakeServiceFactory"/>) with every log event it writes captured in <see cref="Sink"/>.</summary>
public abstract class CapturedLogHost(Dictionary<string, string?> settings) : IAsyncLifetime
{
    private readonly FakeServiceFactory _fake = new(settings);

    internal CapturingSink Sink { get; } = new();

    protected WebApplicationFactory<Program> Factory { get; private set; } = null!;

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync()
    {
        Factory = _fake.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<ILogEventSink>(Sink)));
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await Factory.DisposeAsync();
        await _fake.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
