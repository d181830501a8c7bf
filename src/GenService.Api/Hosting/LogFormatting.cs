using System.Globalization;
using System.Text;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Serilog.Parsing;

namespace GenService.Api.Hosting;

/// <summary>
/// The two console log formats. Text (the default) is one line per event only if no value in it can break the line:
/// request paths, query strings, model and field names come from the client, so <see cref="EscapingTextFormatter"/>
/// writes their control characters as <c>\r</c>, <c>\n</c>, <c>\t</c> and <c>\uXXXX</c>. Compact JSON escapes them
/// by itself (JSON strings cannot hold a raw control character).
/// </summary>
internal static class LogFormatting
{
    /// <summary>Serilog's console default, minus the colours (the escaped text is what any terminal or file gets).</summary>
    public const string TextTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}";

    /// <summary>The text console format: Serilog's default template over values with their control characters escaped.</summary>
    public static ITextFormatter Text() =>
        new EscapingTextFormatter(new MessageTemplateTextFormatter(TextTemplate, CultureInfo.InvariantCulture));

    /// <summary>The JSON console format (<c>GenService:Logging:Json</c>): one compact JSON object per line.</summary>
    public static ITextFormatter Json() => new CompactJsonFormatter();
}

/// <summary>
/// Formats each event with the <paramref name="inner"/> formatter after replacing, in its property values and
/// message template, every control character (CR, LF, other C0/C1 characters, U+2028, U+2029) with an escape, so a
/// client-controlled value cannot start a forged log line. Events without such characters pass untouched. The
/// exception (a stack trace is multi-line by nature, and only 5xx carry one) is left as it is.
/// </summary>
internal sealed class EscapingTextFormatter(ITextFormatter inner) : ITextFormatter
{
    private static readonly MessageTemplateParser Parser = new();

    /// <summary>C0 and C1 controls (CR, LF, ESC, NEL, ...) and the Unicode line and paragraph separators.</summary>
    private static readonly System.Buffers.SearchValues<char> Controls = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(i => (char)i), .. Enumerable.Range(0x7f, 0x21).Select(i => (char)i), '\u2028', '\u2029']);

    public void Format(LogEvent logEvent, TextWriter output)
    {
        bool templateDirty = NeedsEscaping(logEvent.MessageTemplate.Text);
        bool propertiesDirty = logEvent.Properties.Values.Any(NeedsEscaping);
        if (!templateDirty && !propertiesDirty)
        {
            inner.Format(logEvent, output);
            return;
        }

        MessageTemplate template = templateDirty ? Parser.Parse(Escape(logEvent.MessageTemplate.Text)) : logEvent.MessageTemplate;
        IEnumerable<LogEventProperty> properties = logEvent.Properties.Select(p => new LogEventProperty(p.Key, Escape(p.Value)));
        var escaped = new LogEvent(logEvent.Timestamp, logEvent.Level, logEvent.Exception, template, properties, logEvent.TraceId ?? default, logEvent.SpanId ?? default);
        inner.Format(escaped, output);
    }

    /// <summary>A string with its control characters escaped as in JSON (<c>\n</c>, <c>\u001b</c>); others unchanged.</summary>
    internal static string Escape(string text)
    {
        if (!NeedsEscaping(text))
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            _ = c switch
            {
                '\r' => builder.Append("\\r"),
                '\n' => builder.Append("\\n"),
                '\t' => builder.Append("\\t"),
                _ when IsControl(c) => builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)),
                _ => builder.Append(c),
            };
        }

        return builder.ToString();
    }

    private static bool IsControl(char c) => Controls.Contains(c);

    private static bool NeedsEscaping(string text) => text.AsSpan().ContainsAny(Controls);

    private static bool NeedsEscaping(LogEventPropertyValue value) => value switch
    {
        ScalarValue { Value: string s } => NeedsEscaping(s),
        ScalarValue { Value: char c } => IsControl(c),
        ScalarValue { Value: null or bool or IFormattable } => false, // numbers, dates, ids: no control characters
        ScalarValue { Value: { } other } => NeedsEscaping(other.ToString() ?? ""),
        SequenceValue sequence => sequence.Elements.Any(NeedsEscaping),
        StructureValue structure => (structure.TypeTag is { } tag && NeedsEscaping(tag)) || structure.Properties.Any(p => NeedsEscaping(p.Value)),
        DictionaryValue dictionary => dictionary.Elements.Any(e => NeedsEscaping(e.Key) || NeedsEscaping(e.Value)),
        _ => false,
    };

    private static LogEventPropertyValue Escape(LogEventPropertyValue value) => value switch
    {
        _ when !NeedsEscaping(value) => value,
        ScalarValue { Value: string s } => new ScalarValue(Escape(s)),
        ScalarValue { Value: char c } => new ScalarValue(Escape(c.ToString())),
        ScalarValue { Value: { } other } => new ScalarValue(Escape(other.ToString() ?? "")),
        SequenceValue sequence => new SequenceValue(sequence.Elements.Select(Escape)),
        StructureValue structure => new StructureValue(structure.Properties.Select(p => new LogEventProperty(p.Name, Escape(p.Value))), structure.TypeTag is null ? null : Escape(structure.TypeTag)),
        DictionaryValue dictionary => new DictionaryValue(dictionary.Elements.Select(e => new KeyValuePair<ScalarValue, LogEventPropertyValue>((ScalarValue)Escape(e.Key), Escape(e.Value)))),
        _ => value,
    };
}
