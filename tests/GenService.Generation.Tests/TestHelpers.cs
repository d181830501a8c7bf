namespace GenService.Generation.Tests;

/// <summary>Small helpers shared by the engine tests.</summary>
internal static class TestHelpers
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;
}
