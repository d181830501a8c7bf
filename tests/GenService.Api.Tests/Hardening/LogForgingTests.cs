using System.Text.Json;
using GenService.Api.Hosting;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Parsing;

namespace GenService.Api.Tests.Hardening;

/// <summary>
/// Client-controlled values cannot forge log lines: the events a request with CR/LF in its path and body writes,
/// formatted by the host's own text formatter, stay one line each with the characters escaped; the compact JSON
/// formatter keeps them one line too and round-trips the exact value.
/// </summary>
public sealed class LogForgingTests() : CapturedLogHost(new Dictionary<string, string?>())
{
    private const string Forged = "[12:00:00 ERR] forged";

    private static string[] Lines(ITextFormatter formatter, IEnumerable<LogEvent> events)
    {
        using var writer = new StringWriter();
        foreach (LogEvent e in events)
        {
            formatter.Format(e, writer);
        }

        return writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public async Task A_crlf_in_the_path_and_in_a_field_name_cannot_start_a_line_in_either_console_format()
    {
        using HttpClient client = Factory.CreateClient();
        using (HttpResponseMessage response = await client.GetAsync("/v1/models/x%0D%0A%5B12:00:00%20ERR%5D%20forged", Ct))
        {
            Assert.Equal(System.Net.HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var body = new StringContent("{\"bo\\r\\n[12:00:00 ERR] forged\": 1}", System.Text.Encoding.UTF8, "application/json"))
        using (HttpResponseMessage response = await client.PostAsync("/v1/gan/fake/samples", body, Ct))
        {
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        }

        // The request log line and the mapped-error line carry the raw values (the test proves they did get there).
        LogEvent[] events = [.. Sink.Events];
        Assert.Contains(events, e => e.Properties.Values.Any(v => v.ToString().Contains("\r\n[12:00:00", StringComparison.Ordinal) || v.ToString().Contains("\\r\\n[12:00:00", StringComparison.Ordinal)));

        string[] text = Lines(LogFormatting.Text(), events);
        Assert.DoesNotContain(text, line => line.TrimStart('\r').StartsWith(Forged, StringComparison.Ordinal));
        Assert.All(text, line => Assert.DoesNotContain('\r', line));
        Assert.Contains(text, line => line.Contains("x\\r\\n[12:00:00 ERR] forged", StringComparison.Ordinal));
        Assert.Equal(events.Length, text.Length); // one line per event

        string[] json = Lines(LogFormatting.Json(), events);
        Assert.Equal(events.Length, json.Length);
        Assert.All(json, line => JsonDocument.Parse(line));
        Assert.Contains(json, line => JsonDocument.Parse(line).RootElement.EnumerateObject()
            .Any(p => p.Value.ValueKind == JsonValueKind.String && p.Value.GetString()!.Contains("/v1/models/x\r\n[12:00:00 ERR] forged", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("a\rb", "a\\rb")]
    [InlineData("a\nb", "a\\nb")]
    [InlineData("tab\there", "tab\\there")]
    [InlineData("bell\u0007esc\u001b", "bell\\u0007esc\\u001b")]
    [InlineData("del\u007f c1\u0085 ls\u2028 ps\u2029", "del\\u007f c1\\u0085 ls\\u2028 ps\\u2029")]
    [InlineData("plain ünïcödé / \\ \"quoted\"", "plain ünïcödé / \\ \"quoted\"")]
    public void Text_format_escapes_control_characters_in_values_and_templates(string value, string expected)
    {
        var template = new MessageTemplateParser().Parse("GET {Path} -> 404");
        var e = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, template, [new LogEventProperty("Path", new ScalarValue(value))]);
        string[] lines = Lines(LogFormatting.Text(), [e]);
        Assert.Single(lines);
        Assert.EndsWith($"GET {expected} -> 404", lines[0].TrimEnd('\r'), StringComparison.Ordinal);

        var raw = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, new MessageTemplateParser().Parse("pre-formatted " + value), []);
        Assert.Single(Lines(LogFormatting.Text(), [raw]));

        var nested = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, new MessageTemplateParser().Parse("{@Body}"),
            [new LogEventProperty("Body", new StructureValue([new LogEventProperty("field", new SequenceValue([new ScalarValue(value)]))]))]);
        Assert.Single(Lines(LogFormatting.Text(), [nested]));
    }
}
