using GenService.Inference;
using GenService.Inference.Callers;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace GenService.Api.Tests.Infrastructure;

/// <summary>
/// The service with a scripted repository instead of ONNX models, for what real models cannot easily show:
/// every datatype, a full queue (429), a passed deadline (504), a model still loading (503).
/// <code>
///   fake.echo     Ready    x FP32 [-1,3], ids INT64 [-1,2], flag BOOL [-1], n INT32 [-1], d FP64 [-1]
///                          -> x2 = 2x, ids_out = ids+1, flag_out = !flag, n_out = n, d_out = d/2
///   full.generator  Ready    throws QueueFullException (retry after 2 s)
///   slow.generator  Ready    throws DeadlineExceededException
///   loading         Loading  (no version serving yet)
///   broken          Failed   "generator.onnx: not an ONNX file"
///   gated.generator Ready    latent FP32 [-1,2] -> sample = latent, after <see cref="FakeModelRepository.Gate"/> opens (a request held in flight)
/// </code>
/// </summary>
public sealed class FakeServiceFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;

    public FakeServiceFactory()
        : this(new Dictionary<string, string?>())
    {
    }

    public FakeServiceFactory(Dictionary<string, string?> settings) => _settings = settings;

    public FakeModelRepository Repository { get; } = new();

    /// <summary>The client address of every request (<see cref="ClientAddress"/>); loopback by default.</summary>
    public System.Net.IPAddress RemoteAddress { get; init; } = System.Net.IPAddress.Loopback;

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        catch (ObjectDisposedException)
        {
            // KNOWN ISSUE in GenService.Inference, see GenServiceFactory.DisposeAsync. Remove when fixed.
        }

        GC.SuppressFinalize(this);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        string empty = Path.Combine(Path.GetTempPath(), "genservice-empty-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(empty);
        builder.UseSetting("GenService:ModelRepository", empty);
        foreach ((string key, string? value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton<IModelRepository>(Repository);
            services.AddTransient<IStartupFilter, ThrowingRoutes>();
            services.AddSingleton<IStartupFilter>(new ClientAddress(RemoteAddress));
        });
    }
}

/// <summary>GET /throw/{kind}: throws a domain exception past the endpoints, to see what the handler makes of it.</summary>
internal sealed class ThrowingRoutes : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        next(app);
        app.Run(context => (context.Request.Path.Value ?? "") switch
        {
            "/throw/validation" => throw new RequestValidationException("steps", "'steps' must be in 1..1000; got 0."),
            "/throw/wrong-family" => throw new WrongFamilyException("digits-vae", "gan", "vae"),
            "/throw/queue-full" => throw new QueueFullException("m.generator", 8, TimeSpan.FromSeconds(3)),
            "/throw/deadline" => throw new DeadlineExceededException("m.generator", TimeSpan.FromSeconds(1)),
            "/throw/bug" => throw new InvalidOperationException("secret internals"),

            // What the batchers and loops would read as this request's own deadline (X-Request-Timeout-Ms).
            "/echo/deadline" => Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(context.Response, GenService.Inference.Callers.RequestDeadline.Current?.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"),
            _ => NotFound(context),
        });
    };

    // What the real pipeline's end does for a path no route matched (the status-code pages then write the body).
    private static Task NotFound(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }
}

public sealed class FakeModelRepository : IModelRepository
{
    private readonly Dictionary<string, ModelEntry> _entries = new(StringComparer.Ordinal);

    public FakeModelRepository()
    {
        Add("fake", ModelState.Ready, new FakeGraph("fake", "echo",
            [Spec("x", TensorElementType.Float32, -1, 3), Spec("ids", TensorElementType.Int64, -1, 2), Spec("flag", TensorElementType.Bool, -1),
             Spec("n", TensorElementType.Int32, -1), Spec("d", TensorElementType.Float64, -1)],
            [Spec("x2", TensorElementType.Float32, -1, 3), Spec("ids_out", TensorElementType.Int64, -1, 2), Spec("flag_out", TensorElementType.Bool, -1),
             Spec("n_out", TensorElementType.Int32, -1), Spec("d_out", TensorElementType.Float64, -1)],
            Echo));
        Add("full", ModelState.Ready, Throwing("full", new QueueFullException("full.generator", 8, TimeSpan.FromSeconds(2))));
        Add("slow", ModelState.Ready, Throwing("slow", new DeadlineExceededException("slow.generator", TimeSpan.FromMilliseconds(100))));
        Add("gated", ModelState.Ready, new FakeGraph("gated", "generator", [new TensorSpec("latent", "latent", TensorElementType.Float32, [-1, 2])], [new TensorSpec("sample", "sample", TensorElementType.Float32, [-1, 2])],
            r => new Dictionary<string, Tensor> { ["sample"] = r.Inputs["latent"] }, Gate));
        Add("loading", ModelState.Loading, null);
        Add("broken", ModelState.Failed, null, "generator.onnx: not an ONNX file");
    }

    /// <summary>Every request the runners received, in order.</summary>
    public List<InferenceRequest> Received { get; } = [];

    /// <summary>The caller (<see cref="CallerContext.Current"/>) of each request in <see cref="Received"/>.</summary>
    public List<string> Callers { get; } = [];

    /// <summary>Holds every call of gated.generator until the test opens it.</summary>
    public CallGate Gate { get; } = new();

    private static TensorSpec Spec(string name, TensorElementType type, params long[] dims) => new(name, null, type, dims);

    private static FakeGraph Throwing(string model, Exception error) =>
        new(model, "generator", [Spec("z", TensorElementType.Float32, -1, 2)], [Spec("img", TensorElementType.Float32, -1, 2)], _ => throw error);

    private static Dictionary<string, Tensor> Echo(InferenceRequest r)
    {
        Tensor x = r.Inputs["x"], ids = r.Inputs["ids"], flag = r.Inputs["flag"], n = r.Inputs["n"], d = r.Inputs["d"];
        return new Dictionary<string, Tensor>
        {
            ["x2"] = new(TensorElementType.Float32, x.Shape, x.AsFloats().Select(v => v * 2).ToArray()),
            ["ids_out"] = new(TensorElementType.Int64, ids.Shape, ids.AsLongs().Select(v => v + 1).ToArray()),
            ["flag_out"] = new(TensorElementType.Bool, flag.Shape, ((bool[])flag.Data).Select(v => !v).ToArray()),
            ["n_out"] = new(TensorElementType.Int32, n.Shape, (int[])n.Data),
            ["d_out"] = new(TensorElementType.Float64, d.Shape, ((double[])d.Data).Select(v => v / 2).ToArray()),
        };
    }

    private void Add(string name, ModelState state, FakeGraph? graph, string? error = null)
    {
        var manifest = new ModelManifest
        {
            Name = name,
            Family = ModelFamily.Gan,
            Version = "3",
            Output = new OutputSpec { Kind = "tensor", Shape = [2] },
            LatentShape = [2],
            Graphs = new Dictionary<string, GraphSpec> { [graph?.Role ?? "generator"] = new() { File = "generator.onnx" } },
        };
        ILoadedModel? model = graph is null || state != ModelState.Ready ? null : new FakeLoadedModel(manifest, graph);
        graph?.Attach(this);
        _entries[name] = new ModelEntry(name, "/fake/" + name, state, manifest, model, error, null);
    }

    public IReadOnlyList<ModelEntry> List() => [.. _entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal)];

    public ModelEntry? Find(string name) => _entries.GetValueOrDefault(name);

    public ILoadedModel GetReady(string name)
    {
        ModelEntry entry = Find(name) ?? throw new ModelNotFoundException(name);
        return entry.Model ?? throw new ModelNotReadyException(name, entry.Error ?? entry.State.ToString());
    }

    public IGraphRunner GetGraph(string v2Name)
    {
        int dot = v2Name.LastIndexOf('.');
        if (dot <= 0)
        {
            throw new ModelNotFoundException(v2Name);
        }

        return GetReady(v2Name[..dot]).Graph(v2Name[(dot + 1)..]) ?? throw new ModelNotFoundException(v2Name);
    }

    public Task<IReadOnlyList<ModelEntry>> IndexAsync(CancellationToken cancellationToken) => Task.FromResult(List());

    public Task<ModelEntry> LoadAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult(Find(name) ?? throw new ModelNotFoundException(name));

    public Task<bool> UnloadAsync(string name, CancellationToken cancellationToken) => Task.FromResult(_entries.ContainsKey(name));

    private sealed class FakeLoadedModel(ModelManifest manifest, IGraphRunner graph) : ILoadedModel
    {
        public ModelManifest Manifest => manifest;

        public IReadOnlyDictionary<string, IGraphRunner> Graphs { get; } = new Dictionary<string, IGraphRunner> { [graph.Role] = graph };

        public IGraphRunner? Graph(string role) => Graphs.GetValueOrDefault(role);
    }

    private sealed class FakeGraph(string model, string role, TensorSpec[] inputs, TensorSpec[] outputs, Func<InferenceRequest, Dictionary<string, Tensor>> run, CallGate? gate = null) : IGraphRunner
    {
        private FakeModelRepository? _owner;

        public string ModelName => model;

        public string Role => role;

        public string V2Name => $"{model}.{role}";

        public GraphSignature Signature { get; } = new(inputs, outputs);

        public int MaxBatchSize => 8;

        public void Attach(FakeModelRepository owner) => _owner = owner;

        public async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            lock (_owner!.Received)
            {
                _owner.Received.Add(request);
                _owner.Callers.Add(CallerContext.Current);
            }

            if (gate is not null)
            {
                await gate.PassAsync(cancellationToken);
            }

            Dictionary<string, Tensor> all = run(request);
            Dictionary<string, Tensor> wanted = request.Outputs is null ? all : request.Outputs.ToDictionary(n => n, n => all[n]);
            return new InferenceResult
            {
                Outputs = wanted,
                QueueTime = TimeSpan.FromMilliseconds(0.25),
                ComputeTime = TimeSpan.FromMilliseconds(1.5),
                BatchSize = request.Inputs.Values.First().Rows,
            };
        }
    }
}

/// <summary>A gate for fake graph calls: <see cref="Entered"/> completes when the first call arrives; calls wait until <see cref="Open"/>.</summary>
public sealed class CallGate
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once a call is waiting at (or has passed) the gate.</summary>
    public Task Entered => _entered.Task;

    /// <summary>Lets every call through, now and from now on.</summary>
    public void Open() => _open.TrySetResult();

    internal async Task PassAsync(CancellationToken cancellationToken)
    {
        _entered.TrySetResult();
        await _open.Task.WaitAsync(cancellationToken);
    }
}
