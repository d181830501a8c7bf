using GenService.Sampling.Autoregressive;

namespace GenService.Sampling.Tests;

public sealed class StopSequencesTests
{
    [Fact]
    public void Finds_the_earliest_stop()
    {
        Assert.Equal(5, StopSequences.FindEarliest("hello world. bye", ["bye", " w", "."], out var len));
        Assert.Equal(2, len);
        Assert.Equal(-1, StopSequences.FindEarliest("hello", ["x"], out len));
        Assert.Equal(0, len);
        // Same start: the longer stop wins, so nothing of it leaks into the output.
        Assert.Equal(2, StopSequences.FindEarliest("abcdef", ["cd", "cde"], out len));
        Assert.Equal(3, len);
    }

    [Fact]
    public void Pending_suffix_is_the_longest_possible_stop_start()
    {
        Assert.Equal(2, StopSequences.PendingSuffixLength("the en", ["end.", "x"]));
        Assert.Equal(0, StopSequences.PendingSuffixLength("the end", ["xyz"]));
        Assert.Equal(3, StopSequences.PendingSuffixLength("aaa", ["aaaa"]));
    }

    [Fact]
    public void Validation_names_the_field()
    {
        Assert.Equal("stop", Assert.Throws<ArgumentOutOfRangeException>(() => StopSequences.Validate(["a", "b", "c", "d", "e"])).ParamName);
        Assert.Equal("stop", Assert.Throws<ArgumentException>(() => StopSequences.Validate([""])).ParamName);
        StopSequences.Validate(["ok"]);
    }
}
