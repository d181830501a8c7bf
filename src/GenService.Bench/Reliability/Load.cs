using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;

namespace GenService.Bench.Reliability;

/// <summary>One request of a reliability run: its class (for the report), route, JSON body and API key (or none).</summary>
internal sealed record Shot(string Class, string Route, string Body, string? Key = null);

/// <summary>
/// What came back for one request: status (0 = no response), latency, whether Retry-After was set, when it was sent
/// (seconds into the run), and for no response whether the connection was refused (never accepted) or broke after the
/// request was sent (an accepted request lost).
/// </summary>
internal readonly record struct Answer(string Class, int Status, double Ms, bool RetryAfter, double At, string? Failure = null);

/// <summary>
/// The load generators of the reliability runs. Unlike the throughput benchmarks they keep every answer, whatever its
/// status, since the question is what the service answers under stress (200s complete, 429s fast, nothing else).
/// </summary>
internal sealed class Load(HttpClient client)
{
    private readonly List<Answer> _answers = [];

    public IReadOnlyList<Answer> Answers
    {
        get
        {
            lock (_answers)
            {
                return [.. _answers];
            }
        }
    }

    public static HttpClient Client(string url) => new(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
    {
        BaseAddress = new Uri(url),
        Timeout = TimeSpan.FromMinutes(5),
    };

    /// <summary>Sends one request; latency counted from <paramref name="scheduled"/> (open loop: the planned arrival).</summary>
    public async Task SendAsync(Shot shot, long scheduled, long runStart)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, shot.Route)
        {
            Content = new StringContent(shot.Body, Encoding.UTF8, "application/json"),
        };
        if (shot.Key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", shot.Key);
        }

        int status;
        bool retryAfter = false;
        string? failure = null;
        try
        {
            using HttpResponseMessage response = await client.SendAsync(request);
            _ = await response.Content.ReadAsByteArrayAsync();
            status = (int)response.StatusCode;
            retryAfter = response.Headers.RetryAfter is not null;
        }
        catch (HttpRequestException e)
        {
            status = 0;
            failure = e.HttpRequestError == HttpRequestError.ConnectionError ? "refused" : "broken: " + e.HttpRequestError;
        }
        catch (TaskCanceledException)
        {
            status = 0;
            failure = "timeout";
        }

        long now = Stopwatch.GetTimestamp();
        var answer = new Answer(shot.Class, status, (now - scheduled) * 1000.0 / Stopwatch.Frequency, retryAfter, (scheduled - runStart) / (double)Stopwatch.Frequency, failure);
        lock (_answers)
        {
            _answers.Add(answer);
        }
    }

    /// <summary>
    /// Closed loop: <paramref name="workers"/> each send, wait, send the next, for <paramref name="seconds"/> or until
    /// <paramref name="stop"/> is cancelled.
    /// </summary>
    public async Task<double> ClosedLoopAsync(int workers, double seconds, Func<int, int, Shot> next, CancellationToken stop = default)
    {
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            for (int i = 0; Stopwatch.GetTimestamp() < end && !stop.IsCancellationRequested; i++)
            {
                await SendAsync(next(w, i), Stopwatch.GetTimestamp(), start);
            }
        })));
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>
    /// Open loop: Poisson arrivals at <paramref name="rate"/>/s for <paramref name="seconds"/>; latency from each planned
    /// arrival (no coordinated omission). Returns when every request has been answered.
    /// </summary>
    public async Task OpenLoopAsync(double rate, double seconds, int seed, Func<Random, int, Shot> next)
    {
        var rng = new Random(seed);
        var inFlight = new List<Task>();
        long start = Stopwatch.GetTimestamp();
        double at = 0;
        for (int i = 0; ; i++)
        {
            at += -Math.Log(1 - rng.NextDouble()) / rate;
            if (at >= seconds)
            {
                break;
            }

            Shot shot = next(rng, i);
            TimeSpan wait = TimeSpan.FromSeconds(at) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            long scheduled = start + (long)(at * Stopwatch.Frequency);
            inFlight.Add(Task.Run(() => SendAsync(shot, scheduled, start)));
        }

        await Task.WhenAll(inFlight);
    }
}
