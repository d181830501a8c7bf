using GenService.Sampling.Interpolation;

namespace GenService.Sampling.Tests;

public sealed class InterpolationTests
{
    [Fact]
    public void Slerp_and_lerp_match_numpy()
    {
        var root = Fixture.Load("interpolation.json");
        var a = Fixture.Floats(root.GetProperty("a"));
        var b = Fixture.Floats(root.GetProperty("b"));
        var ts = Fixture.Doubles(root.GetProperty("t"));
        var slerp = root.GetProperty("slerp");
        var lerp = root.GetProperty("lerp");
        var output = new float[a.Length];
        for (var k = 0; k < ts.Length; k++)
        {
            LatentInterpolation.Slerp(a, b, ts[k], output);
            Assert.True(Fixture.RelativeError(output, Fixture.Doubles(slerp[k])) < 1e-6, $"slerp t={ts[k]}");
            LatentInterpolation.Lerp(a, b, ts[k], output);
            Assert.True(Fixture.RelativeError(output, Fixture.Doubles(lerp[k])) < 1e-6, $"lerp t={ts[k]}");
        }
    }

    [Fact]
    public void Slerp_keeps_the_norm_of_orthogonal_unit_vectors()
    {
        float[] a = [1, 0, 0];
        float[] b = [0, 1, 0];
        var mid = new float[3];
        LatentInterpolation.Slerp(a, b, 0.5, mid);
        Assert.Equal(Math.Sqrt(0.5), mid[0], 1e-6);
        Assert.Equal(Math.Sqrt(0.5), mid[1], 1e-6);
        LatentInterpolation.Lerp(a, b, 0.5, mid);
        Assert.Equal(0.5, mid[0], 1e-7); // lerp shrinks the norm: the reason slerp is the default
    }

    [Fact]
    public void Slerp_falls_back_to_lerp_for_parallel_and_zero_vectors()
    {
        float[] a = [1, 2, 3];
        float[] b = [2, 4, 6.0001f];
        var s = new float[3];
        var l = new float[3];
        LatentInterpolation.Slerp(a, b, 0.3, s);
        LatentInterpolation.Lerp(a, b, 0.3, l);
        Assert.Equal(l, s);
        LatentInterpolation.Slerp(new float[3], b, 0.3, s);
        Assert.All(s, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(0.3f * 4, s[1], 1e-6);
    }

    [Fact]
    public void Frames_run_from_a_to_b()
    {
        float[] a = [1, 0];
        float[] b = [0, 1];
        var frames = LatentInterpolation.Frames(InterpolationMethod.Slerp, a, b, 5);
        Assert.Equal(5, frames.Length);
        Assert.Equal(a, frames[0]);
        Assert.Equal(b[1], frames[4][1], 1e-6);
        Assert.Equal(0.25, LatentInterpolation.FrameT(1, 5));
        var angle = Math.Atan2(frames[1][1], frames[1][0]);
        Assert.Equal(Math.PI / 8, angle, 1e-6); // equal angular steps
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LatentInterpolation.Frames(InterpolationMethod.Lerp, a, b, 0));
        Assert.Equal("frames", ex.ParamName);
    }
}
