using GenService.Inference.Hosting;
using GenService.Inference.Repository;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace GenService.Api.Tests.Infrastructure;

/// <summary>
/// The whole service in memory (WebApplicationFactory) over a model folder: by default the repository's
/// real <c>models/</c>. It waits in <see cref="InitializeAsync"/> until every model folder has finished
/// loading (Ready or Failed), so tests never race the background load.
/// <para>
/// Use (xunit.v3): it is the fixture of the collection <see cref="RealModels"/> (Collections.cs):
/// <code>
///   [Collection(RealModels.Name)]
///   public sealed class GanSamplesTests(GenServiceFactory factory)
///   {
///       [Fact]
///       public async Task Samples()
///       {
///           using HttpClient client = factory.CreateClient();
///           var response = await client.PostAsJsonAsync("/v1/gan/digits-gan/samples", new { count = 2 }, TestContext.Current.CancellationToken);
///       }
///   }
/// </code>
/// One host is shared by every class in the collection. For another folder (a temp copy with a broken model,
/// the tiny test models) construct one yourself: <c>await using var f = new GenServiceFactory(path); await f.InitializeAsync();</c>.
/// </para>
/// </summary>
public sealed class GenServiceFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    private readonly IReadOnlyDictionary<string, string?> _settings;

    /// <summary>The shipped models/ folder.</summary>
    public GenServiceFactory()
        : this(RepositoryPaths.RealModels)
    {
    }

    /// <param name="modelRepository">The model folder to serve.</param>
    /// <param name="settings">Extra configuration, e.g. ["GenService:Auth:RequireKey"] = "true".</param>
    internal GenServiceFactory(string modelRepository, IReadOnlyDictionary<string, string?>? settings = null)
    {
        ModelRepository = modelRepository;
        _settings = settings ?? new Dictionary<string, string?>();
    }

    public string ModelRepository { get; }

    public IModelRepository Repository => Services.GetRequiredService<IModelRepository>();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("GenService:ModelRepository", ModelRepository);
        foreach ((string key, string? value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        // Requests come from 127.0.0.1 (ClientAddress): the repository routes answer loopback callers without an admin key.
        builder.ConfigureServices(services => services.AddSingleton<IStartupFilter>(new ClientAddress(System.Net.IPAddress.Loopback)));
    }

    public async ValueTask InitializeAsync()
    {
        _ = Server; // starts the host, and with it the repository's startup scan
        await WaitForModelsAsync(TimeSpan.FromMinutes(3));
    }

    /// <summary>
    /// Until the repository's startup scan has ended (awaited, not polled): every model folder is then listed and
    /// none is still loading. <paramref name="timeout"/> only keeps a broken load from hanging the test run.
    /// </summary>
    public async Task WaitForModelsAsync(TimeSpan timeout)
    {
        RepositoryStartupService startup = Services.GetServices<IHostedService>().OfType<RepositoryStartupService>().Single();
        try
        {
            await startup.Scan.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Models in {ModelRepository} still loading after {timeout}: {States()}");
        }

        int folders = Directory.Exists(ModelRepository)
            ? Directory.GetDirectories(ModelRepository).Count(GenService.Inference.Manifest.ManifestLoader.IsModelFolder)
            : 0;
        IReadOnlyList<ModelEntry> entries = Repository.List();
        if (entries.Count < folders || entries.Any(e => e.State == ModelState.Loading))
        {
            throw new InvalidOperationException($"The startup scan of {ModelRepository} ended with {entries.Count} of {folders} folders listed: {States()}");
        }

        string States() => string.Join(", ", Repository.List().Select(e => $"{e.Name}={e.State}"));
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        catch (ObjectDisposedException)
        {
            // KNOWN ISSUE (GenService.Inference): RepositoryStartupService.StopAsync is not idempotent; the host
            // stops twice under WebApplicationFactory (RunAsync's own stop, then the factory's) and the second
            // CancelAsync meets a disposed CancellationTokenSource. Shutdown is otherwise complete. Remove when fixed.
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>The tiny test models (TestModels/): fast, always present, used by most API tests.</summary>
public sealed class TestModelsFactory() : IAsyncLifetime
{
    public GenServiceFactory Factory { get; } = new(RepositoryPaths.TestModels);

    public HttpClient CreateClient() => Factory.CreateClient();

    public ValueTask InitializeAsync() => Factory.InitializeAsync();

    public ValueTask DisposeAsync() => Factory.DisposeAsync();
}
