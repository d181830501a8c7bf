using GenService.Inference;
using GenService.Sampling.Diffusion;
using GenService.Sampling.Interpolation;

namespace GenService.Generation.Tests;

/// <summary>Every enumeration of the wire contract parses in one place and answers a bad value alike.</summary>
public sealed class WireChoicesTests
{
    [Fact]
    public void Wire_names_round_trip_and_unknown_ones_name_the_field()
    {
        // Moved from GenService.Sampling.Tests (the parsers left Sampling for this one table).
        foreach (var kind in Enum.GetValues<SamplerKind>())
        {
            Assert.Equal(kind, WireChoices.Sampler.Parse(SamplerSettings.WireName(kind)));
        }

        Assert.Equal("sampler", Assert.Throws<RequestValidationException>(() => WireChoices.Sampler.Parse("plms")).Field);
        Assert.Equal("timestep_spacing", Assert.Throws<RequestValidationException>(() => WireChoices.Spacing.Parse("karras")).Field);
        Assert.Equal("method", Assert.Throws<RequestValidationException>(() => WireChoices.Method.Parse("cubic")).Field);
        Assert.Equal("output", Assert.Throws<RequestValidationException>(() => WireChoices.Output.Parse("jpeg")).Field);
    }

    [Fact]
    public void An_unknown_value_is_a_400_that_lists_every_allowed_value()
    {
        var e = Assert.Throws<RequestValidationException>(() => WireChoices.Sampler.Parse("plms"));
        Assert.Equal("'sampler' must be one of ddpm, ddim, dpm_solver_pp, euler, euler_ancestral, pndm; got 'plms'.", e.Message);
        Assert.Equal("'timestep_spacing' must be one of leading, trailing, linspace; got 'x'.", Assert.Throws<RequestValidationException>(() => WireChoices.Spacing.Parse("x")).Message);
        Assert.Equal("'method' must be one of slerp, lerp; got 'x'.", Assert.Throws<RequestValidationException>(() => WireChoices.Method.Parse("x")).Message);
        Assert.Equal("'output' must be one of png, tensor, both; got 'x'.", Assert.Throws<RequestValidationException>(() => WireChoices.Output.Parse("x")).Message);
    }

    [Theory]
    [InlineData("DDIM", SamplerKind.Ddim)]
    [InlineData("dpmsolver++", SamplerKind.DpmSolverPP)]
    [InlineData("dpm_solver++", SamplerKind.DpmSolverPP)]
    [InlineData("Euler_Ancestral", SamplerKind.EulerAncestral)]
    [InlineData("PNDM", SamplerKind.Pndm)]
    public void Case_is_ignored_and_aliases_are_accepted(string name, SamplerKind expected)
        => Assert.Equal(expected, WireChoices.Sampler.Parse(name));

    [Fact]
    public void An_absent_value_is_left_to_the_callers_default()
    {
        Assert.Null(WireChoices.Method.Parse(null));
        Assert.Null(WireChoices.Method.Parse(""));
        Assert.Equal(InterpolationMethod.Lerp, WireChoices.Method.Parse("LERP"));
        Assert.DoesNotContain("dpmsolver++", WireChoices.Sampler.Names);
    }
}
