using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.KServe;

/// <summary>
/// The KServe v2 / Triton binary tensor data extension on POST /v2/models/{name}/infer, over the scripted
/// fake.echo graph (x FP32 [-1,3], ids INT64 [-1,2], flag BOOL [-1], n INT32 [-1], d FP64 [-1]).
/// Binary payloads are built here with BinaryPrimitives (explicit little-endian), independently of the server's
/// MemoryMarshal copies, and every binary answer is compared with what the JSON path answers for the same values.
/// </summary>
public sealed class KServeBinaryTensorTests : IAsyncLifetime
{
    private const string Route = "/v2/models/fake.echo/infer";
    private const string HeaderName = "Inference-Header-Content-Length";

    private static readonly float[] X = [1f, 2.5f, -3f, 0.125f, 0f, 1e-3f];
    private static readonly long[] Ids = [9007199254740993L, -1L, 0L, 41L];
    private static readonly bool[] Flag = [true, false];
    private static readonly int[] N = [int.MaxValue, -5];
    private static readonly double[] D = [0.1, 1e300];

    private static readonly string JsonBody = """
        {"id": "req-9", "inputs": [
          {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2.5, -3, 0.125, 0, 1e-3]},
          {"name": "ids", "shape": [2, 2], "datatype": "INT64", "data": [9007199254740993, -1, 0, 41]},
          {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [true, false]},
          {"name": "n", "shape": [2], "datatype": "INT32", "data": [2147483647, -5]},
          {"name": "d", "shape": [2], "datatype": "FP64", "data": [0.1, 1e300]}]}
        """;

    private readonly FakeServiceFactory _factory = new();
    private HttpClient _client = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync()
    {
        _client = _factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _factory.DisposeAsync();
    }

    private static byte[] Le(float[] v) => Build(v.Length * 4, (s, i) => BinaryPrimitives.WriteSingleLittleEndian(s[(i * 4)..], v[i]), v.Length);

    private static byte[] Le(long[] v) => Build(v.Length * 8, (s, i) => BinaryPrimitives.WriteInt64LittleEndian(s[(i * 8)..], v[i]), v.Length);

    private static byte[] Le(int[] v) => Build(v.Length * 4, (s, i) => BinaryPrimitives.WriteInt32LittleEndian(s[(i * 4)..], v[i]), v.Length);

    private static byte[] Le(double[] v) => Build(v.Length * 8, (s, i) => BinaryPrimitives.WriteDoubleLittleEndian(s[(i * 8)..], v[i]), v.Length);

    private static byte[] Le(bool[] v) => v.Select(b => b ? (byte)1 : (byte)0).ToArray();

    private delegate void Put(Span<byte> bytes, int index);

    private static byte[] Build(int size, Put put, int count)
    {
        var bytes = new byte[size];
        for (int i = 0; i < count; i++)
        {
            put(bytes, i);
        }

        return bytes;
    }

    private sealed record Reply(HttpStatusCode Status, string? ContentType, int? HeaderLength, JsonElement Json, byte[] Binary);

    /// <summary>POSTs header + tail; sets Inference-Header-Content-Length unless <paramref name="headerLength"/> says otherwise.</summary>
    private async Task<Reply> PostAsync(string json, byte[] tail, string? headerLength = "auto")
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        using var content = new ByteArrayContent([.. header, .. tail]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        if (headerLength is not null)
        {
            content.Headers.TryAddWithoutValidation(HeaderName, headerLength == "auto" ? header.Length.ToString(CultureInfo.InvariantCulture) : headerLength);
        }

        using HttpResponseMessage response = await _client.PostAsync(Route, content, Ct);
        byte[] body = await response.Content.ReadAsByteArrayAsync(Ct);
        int? split = response.Headers.TryGetValues(HeaderName, out IEnumerable<string>? values) || response.Content.Headers.TryGetValues(HeaderName, out values)
            ? int.Parse(values.Single(), CultureInfo.InvariantCulture)
            : null;
        int jsonLength = split ?? body.Length;
        return new Reply(
            response.StatusCode,
            response.Content.Headers.ContentType?.MediaType,
            split,
            JsonDocument.Parse(body.AsMemory(0, jsonLength)).RootElement.Clone(),
            body[jsonLength..]);
    }

    private static Dictionary<string, JsonElement> Outputs(JsonElement body) =>
        body.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);

    /// <summary>Decodes the binary outputs of a reply, in output order, by their binary_data_size.</summary>
    private static Dictionary<string, byte[]> BinaryOutputs(Reply reply)
    {
        var result = new Dictionary<string, byte[]>();
        int offset = 0;
        foreach (JsonElement output in reply.Json.GetProperty("outputs").EnumerateArray())
        {
            if (output.TryGetProperty("parameters", out JsonElement p) && p.TryGetProperty("binary_data_size", out JsonElement size))
            {
                Assert.False(output.TryGetProperty("data", out _), "a binary output has no JSON data");
                result[output.GetProperty("name").GetString()!] = reply.Binary[offset..(offset + size.GetInt32())];
                offset += size.GetInt32();
            }
        }

        Assert.Equal(reply.Binary.Length, offset);
        return result;
    }

    private static string AllBinaryHeader(string parameters = """{"binary_data_output": true}""") => $$$"""
        {"id": "req-9", "parameters": {{{parameters}}}, "inputs": [
          {"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
          {"name": "ids", "shape": [2, 2], "datatype": "INT64", "parameters": {"binary_data_size": 32}},
          {"name": "flag", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
          {"name": "n", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
          {"name": "d", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]}
        """;

    private static byte[] AllBinaryTail() => [.. Le(X), .. Le(Ids), .. Le(Flag), .. Le(N), .. Le(D)];

    [Fact]
    public async Task Binary_round_trip_of_all_five_datatypes_equals_the_json_path()
    {
        Reply json = await PostAsync(JsonBody, [], headerLength: null);
        var jsonInputs = _factory.Repository.Received.Last().Inputs;
        Reply binary = await PostAsync(AllBinaryHeader(), AllBinaryTail());
        var binaryInputs = _factory.Repository.Received.Last().Inputs;

        Assert.Equal(HttpStatusCode.OK, json.Status);
        Assert.Equal("application/json", json.ContentType);
        Assert.Null(json.HeaderLength);
        Assert.Equal(HttpStatusCode.OK, binary.Status);
        Assert.Equal("application/octet-stream", binary.ContentType);
        Assert.NotNull(binary.HeaderLength);
        Assert.Equal("req-9", binary.Json.GetProperty("id").GetString());

        // What reached the runner is the same, value for value and shape for shape.
        foreach (string name in new[] { "x", "ids", "flag", "n", "d" })
        {
            Assert.Equal(jsonInputs[name].ElementType, binaryInputs[name].ElementType);
            Assert.Equal(jsonInputs[name].Shape, binaryInputs[name].Shape);
            Assert.Equal(jsonInputs[name].Data.Cast<object>(), binaryInputs[name].Data.Cast<object>());
        }

        // Every output comes back as bytes: sizes, datatypes and shapes in the JSON header; values equal the JSON path's.
        Dictionary<string, JsonElement> jsonOut = Outputs(json.Json), binOut = Outputs(binary.Json);
        Dictionary<string, byte[]> bytes = BinaryOutputs(binary);
        Assert.Equal(["x2", "ids_out", "flag_out", "n_out", "d_out"], binOut.Keys);
        foreach (string name in jsonOut.Keys)
        {
            Assert.Equal(jsonOut[name].GetProperty("datatype").GetString(), binOut[name].GetProperty("datatype").GetString());
            Assert.Equal(jsonOut[name].GetProperty("shape").ToString(), binOut[name].GetProperty("shape").ToString());
        }

        Assert.Equal(jsonOut["x2"].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()), Floats(bytes["x2"]));
        Assert.Equal(jsonOut["ids_out"].GetProperty("data").EnumerateArray().Select(e => e.GetInt64()), Longs(bytes["ids_out"]));
        Assert.Equal(jsonOut["flag_out"].GetProperty("data").EnumerateArray().Select(e => e.GetBoolean() ? (byte)1 : (byte)0), bytes["flag_out"]);
        Assert.Equal(jsonOut["n_out"].GetProperty("data").EnumerateArray().Select(e => e.GetInt32()), Ints(bytes["n_out"]));
        Assert.Equal(jsonOut["d_out"].GetProperty("data").EnumerateArray().Select(e => e.GetDouble()), Doubles(bytes["d_out"]));

        // And the known answers (x2 = 2x, ids+1, !flag, n, d/2), in case both paths were wrong the same way.
        Assert.Equal([2f, 5f, -6f, 0.25f, 0f, 2e-3f], Floats(bytes["x2"]));
        Assert.Equal([9007199254740994L, 0L, 1L, 42L], Longs(bytes["ids_out"]));
        Assert.Equal(new byte[] { 0, 1 }, bytes["flag_out"]);
        Assert.Equal([int.MaxValue, -5], Ints(bytes["n_out"]));
        Assert.Equal([0.05, 5e299], Doubles(bytes["d_out"]));
    }

    [Fact]
    public async Task Binary_data_carries_values_json_cannot_and_any_nonzero_byte_is_true()
    {
        float[] x = [-0f, float.Epsilon, float.MaxValue, -1f, 0.5f, -float.MaxValue];
        byte[] tail = [.. Le(x), .. Le(Ids), 7, 0, .. Le(N), .. Le(D)];
        Reply reply = await PostAsync(AllBinaryHeader(), tail);

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var received = _factory.Repository.Received.Last().Inputs;
        Assert.Equal([true, false], (bool[])received["flag"].Data);
        float[] x2 = Floats(BinaryOutputs(reply)["x2"]);
        Assert.Equal([-0f, 2 * float.Epsilon, float.PositiveInfinity, -2f, 1f, float.NegativeInfinity], x2);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public async Task Binary_fp32_data_that_is_not_finite_is_a_400_naming_the_element(float bad)
    {
        // Issue 14: NaN and infinities would run and come back as NaN (or fail a merged call); they are refused.
        float[] x = [0.5f, -1f, 0f, bad, 2f, 3f];
        Reply reply = await PostAsync(AllBinaryHeader(), [.. Le(x), .. Le(Ids), 7, 0, .. Le(N), .. Le(D)]);

        Assert.Equal(HttpStatusCode.BadRequest, reply.Status);
        Assert.Contains("element 3 is not a finite FP32 number", reply.Json.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mixed_binary_and_json_inputs_with_one_binary_output()
    {
        // x and d binary (in that order in the tail), the others JSON; only x2 asked back as bytes.
        string header = """
            {"inputs": [
              {"name": "ids", "shape": [2, 2], "datatype": "INT64", "data": [9007199254740993, -1, 0, 41]},
              {"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
              {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [true, false]},
              {"name": "d", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16, "other": "ignored"}},
              {"name": "n", "shape": [2], "datatype": "INT32", "data": [2147483647, -5]}],
             "outputs": [{"name": "x2", "parameters": {"binary_data": true}}, {"name": "d_out"}, {"name": "flag_out", "parameters": {"binary_data": false}}]}
            """;
        Reply reply = await PostAsync(header, [.. Le(X), .. Le(D)]);

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var received = _factory.Repository.Received.Last().Inputs;
        Assert.Equal(X, received["x"].AsFloats());
        Assert.Equal(D, (double[])received["d"].Data);
        Assert.Equal(Ids, received["ids"].AsLongs());

        Dictionary<string, JsonElement> outputs = Outputs(reply.Json);
        Assert.Equal(["x2", "d_out", "flag_out"], outputs.Keys);
        Dictionary<string, byte[]> bytes = BinaryOutputs(reply);
        Assert.Equal(["x2"], bytes.Keys);
        Assert.Equal(24, outputs["x2"].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal([2f, 5f, -6f, 0.25f, 0f, 2e-3f], Floats(bytes["x2"]));
        Assert.Equal([0.05, 5e299], outputs["d_out"].GetProperty("data").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal([false, true], outputs["flag_out"].GetProperty("data").EnumerateArray().Select(e => e.GetBoolean()));
    }

    [Fact]
    public async Task Json_inputs_can_ask_for_binary_outputs_and_a_per_output_false_wins()
    {
        string body = JsonBody.TrimEnd()[..^1]
            + """, "parameters": {"binary_data_output": true}, "outputs": [{"name": "n_out"}, {"name": "d_out", "parameters": {"binary_data": false}}]}""";
        Reply reply = await PostAsync(body, [], headerLength: null);

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal("application/octet-stream", reply.ContentType);
        Dictionary<string, byte[]> bytes = BinaryOutputs(reply);
        Assert.Equal(["n_out"], bytes.Keys);
        Assert.Equal([int.MaxValue, -5], Ints(bytes["n_out"]));
        Assert.Equal([0.05, 5e299], Outputs(reply.Json)["d_out"].GetProperty("data").EnumerateArray().Select(e => e.GetDouble()));
    }

    [Fact]
    public async Task Without_binary_outputs_the_answer_is_plain_json_even_for_binary_inputs()
    {
        Reply reply = await PostAsync(AllBinaryHeader("""{"binary_data_output": false}"""), AllBinaryTail());

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal("application/json", reply.ContentType);
        Assert.Null(reply.HeaderLength);
        Assert.Empty(reply.Binary);
        Assert.Equal([2f, 5f, -6f, 0.25f, 0f, 2e-3f], Outputs(reply.Json)["x2"].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()));
    }

    public static TheoryData<string, string, int, string?, string> BadBinary => new()
    {
        // why, what to replace in the all-binary header (old=>new), bytes to drop (-) or add (+) at the end of the tail, header value, expected text
        { "size disagrees with shape x datatype", "\"binary_data_size\": 24=>\"binary_data_size\": 20", -4, "auto", "Input 'x' has binary_data_size 20 but shape [2, 3] of FP32 needs 24 bytes" },
        { "BOOL counted as 4 bytes", "\"binary_data_size\": 2}=>\"binary_data_size\": 8}", 6, "auto", "Input 'flag' has binary_data_size 8 but shape [2] of BOOL needs 2 bytes" },
        { "tail shorter than the sizes", "", -3, "auto", "Input 'd' needs 16 bytes of binary data" },
        { "tail longer than the sizes", "", 5, "auto", "binary_data_size add up to 82" },
        { "header length past the body", "", 0, "100000", "Inference-Header-Content-Length is 100000 bytes but the body has only" },
        { "header length not a number", "", 0, "12x", "must be one non-negative integer" },
        { "binary input without the header", "", 0, null, "Binary tensor data after the JSON needs the Inference-Header-Content-Length header" },
        { "data and binary_data_size both", "\"datatype\": \"INT32\", \"parameters\"=>\"datatype\": \"INT32\", \"data\": [1, 2], \"parameters\"", 0, "auto", "Input 'n' has both 'data' and 'parameters.binary_data_size'" },
        { "negative size", "\"binary_data_size\": 24=>\"binary_data_size\": -24", 0, "auto", "'inputs[0].parameters.binary_data_size' must be a non-negative integer" },
        { "binary_data_output not a boolean", "\"binary_data_output\": true=>\"binary_data_output\": 1", 0, "auto", "'parameters.binary_data_output' must be true or false" },
    };

    [Theory]
    [MemberData(nameof(BadBinary))]
    public async Task Bad_binary_requests_are_400s_naming_the_input(string why, string replace, int tailDelta, string? headerValue, string expected)
    {
        string header = AllBinaryHeader();
        if (replace.Length > 0)
        {
            string[] parts = replace.Split("=>");
            Assert.Contains(parts[0], header, StringComparison.Ordinal);
            header = header.Replace(parts[0], parts[1], StringComparison.Ordinal);
        }

        byte[] tail = AllBinaryTail();
        tail = tailDelta < 0 ? tail[..^(-tailDelta)] : [.. tail, .. new byte[tailDelta]];
        using var content = new ByteArrayContent([.. Encoding.UTF8.GetBytes(header), .. tail]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        if (headerValue is not null)
        {
            content.Headers.TryAddWithoutValidation(HeaderName, headerValue == "auto" ? Encoding.UTF8.GetByteCount(header).ToString(CultureInfo.InvariantCulture) : headerValue);
        }

        using HttpResponseMessage response = await _client.PostAsync(Route, content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{why}: got {response.StatusCode} {text}");
        Assert.Contains(expected, JsonDocument.Parse(text).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_metadata_lists_the_extension()
    {
        using HttpResponseMessage response = await _client.GetAsync("/v2", Ct);
        JsonElement server = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Contains("binary_tensor_data", server.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
    }

    private static float[] Floats(byte[] b) => Enumerable.Range(0, b.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(i * 4))).ToArray();

    private static double[] Doubles(byte[] b) => Enumerable.Range(0, b.Length / 8).Select(i => BinaryPrimitives.ReadDoubleLittleEndian(b.AsSpan(i * 8))).ToArray();

    private static int[] Ints(byte[] b) => Enumerable.Range(0, b.Length / 4).Select(i => BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(i * 4))).ToArray();

    private static long[] Longs(byte[] b) => Enumerable.Range(0, b.Length / 8).Select(i => BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(i * 8))).ToArray();
}
